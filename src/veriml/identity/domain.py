"""Domain separation: each kind of signed document signs under its own prefix, so that no signature over one
kind can be replayed as another kind."""

from __future__ import annotations

from enum import Enum


class Domain(Enum):
    MANIFEST = "veriml/manifest/v1"
    RECEIPT = "veriml/receipt/v1"
    ATTESTATION = "veriml/attestation/v1"
    ZK_DOCUMENT = "veriml/zk-document/v1"
    AUDIT_REQUEST = "veriml/audit-request/v1"  # an auditor's signed request for a receipt's inputs and outputs

    def message(self, payload: bytes) -> bytes:
        # The NUL cannot occur in a prefix, so prefix and payload can never be re-split differently.
        return self.value.encode("ascii") + b"\x00" + payload
