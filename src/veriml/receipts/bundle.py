"""The bundle: everything a user keeps to check a result offline, in one JSON file.

The file is the RFC 8785 canonical JSON of the bundle, so the same bundle always has the same bytes, and a
byte changed anywhere either fails to parse or fails a check.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from veriml.codec import (
    EncodedTensors,
    canonical_json_of_plain,
    expect_document,
    json_string,
    parse_json,
    tensors_from_json,
    tensors_to_json,
)
from veriml.errors import InvalidInput, NotFound
from veriml.fsutil import atomic_write
from veriml.hub import SignedManifest, parse_signed_manifest
from veriml.receipts.commitment import parse_salt
from veriml.receipts.receipt import SignedReceipt, parse_signed_receipt

FORMAT_VERSION = 2
_FIELDS = {
    "format_version",
    "manifest",
    "receipt",
    "salt",
    "inputs",
    "outputs",
    "log_proof",
    "attestations",
    "zk_proof",
}
MAX_BUNDLE_BYTES = 1 << 30

# Slots the later layers fill. Each keeps the JSON its layer defines, so this module needs none of them:
LogProofJSON = str  # the C2SP tlog-proof text: index, audit path, cosigned checkpoint (transparency log)
AttestationJSON = Mapping[str, Any]  # a signed attestation of agreement by another node (network, quorum)
ZkProofJSON = Mapping[str, Any]  # an EZKL proof and the ZK document it is checked against (ZK issue)


def _tensors_bytes(tensors: dict[str, np.ndarray], encoded: EncodedTensors | None) -> bytes:
    if encoded is not None and encoded.holds(tensors):
        return encoded.json
    return canonical_json_of_plain(tensors_to_json(tensors))


@dataclass(frozen=True)
class Bundle:
    manifest: SignedManifest
    receipt: SignedReceipt
    salt: bytes  # opens the receipt's commitments; whoever holds it can confirm the inputs and outputs
    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    log_proof: LogProofJSON | None = None
    attestations: tuple[AttestationJSON, ...] = field(default_factory=tuple)
    zk_proof: ZkProofJSON | None = None
    # The inputs' and outputs' canonical JSON when the node already wrote it (for the log): used only while the
    # bundle holds exactly the tensors encoded (`EncodedTensors.holds`: an array changed in place is written anew).
    encoded_inputs: EncodedTensors | None = field(default=None, compare=False, repr=False)
    encoded_outputs: EncodedTensors | None = field(default=None, compare=False, repr=False)

    def to_json(self, signed: bool = True) -> dict[str, Any]:
        """The bundle as JSON; with `signed=False` the manifest and receipt are left out (`to_bytes` adds them)."""
        documents = {"manifest": self.manifest.to_json(), "receipt": self.receipt.to_json()} if signed else {}
        return {
            "format_version": FORMAT_VERSION,
            **documents,
            "salt": self.salt.hex(),
            "inputs": tensors_to_json(self.inputs),
            "outputs": tensors_to_json(self.outputs),
            "log_proof": self.log_proof,
            "attestations": [dict(a) for a in self.attestations],
            "zk_proof": None if self.zk_proof is None else dict(self.zk_proof),
        }

    def with_log_proof(self, log_proof: LogProofJSON) -> Bundle:
        """This bundle carrying `log_proof`: `dataclasses.replace`, without its look-ups of the fields, which
        were a tenth of attaching an answer's proof."""
        return Bundle(
            self.manifest, self.receipt, self.salt, self.inputs, self.outputs, log_proof,
            self.attestations, self.zk_proof, self.encoded_inputs, self.encoded_outputs,
        )  # fmt: skip

    def to_bytes(self) -> bytes:
        """The RFC 8785 bytes of `to_json()`, put together from each member's canonical bytes: the signed
        documents' and the tensors' are reused, not rewritten (property-tested equal to the general writer)."""
        attestations = canonical_json_of_plain([dict(a) for a in self.attestations]) if self.attestations else b"[]"
        return b"".join((
            b'{"attestations":', attestations,
            b',"format_version":', str(FORMAT_VERSION).encode(),
            b',"inputs":', _tensors_bytes(self.inputs, self.encoded_inputs),
            b',"log_proof":', b"null" if self.log_proof is None else json_string(self.log_proof),
            b',"manifest":', self.manifest.canonical_json(),
            b',"outputs":', _tensors_bytes(self.outputs, self.encoded_outputs),
            b',"receipt":', self.receipt.canonical_json(),
            b',"salt":"', self.salt.hex().encode(),
            b'","zk_proof":', b"null" if self.zk_proof is None else canonical_json_of_plain(dict(self.zk_proof)),
            b"}",
        ))  # fmt: skip

    @classmethod
    def from_json(
        cls, obj: object, parse_manifest: Callable[[object], SignedManifest] = parse_signed_manifest
    ) -> Bundle:
        """Parse a bundle's JSON. `parse_manifest` may be a memo of `parse_signed_manifest` on the exact value (a
        client parses the same manifest in every answer); it must give exactly what that function gives."""
        obj = expect_document(obj, _FIELDS, "bundle", FORMAT_VERSION)
        if obj["log_proof"] is not None and not isinstance(obj["log_proof"], str):
            raise InvalidInput("bundle: log_proof must be text or null")
        if not isinstance(obj["attestations"], list) or not all(isinstance(a, dict) for a in obj["attestations"]):
            raise InvalidInput("bundle: attestations must be a list of objects")
        if obj["zk_proof"] is not None and not isinstance(obj["zk_proof"], dict):
            raise InvalidInput("bundle: zk_proof must be an object or null")
        return cls(
            manifest=parse_manifest(obj["manifest"]),
            receipt=parse_signed_receipt(obj["receipt"]),
            salt=parse_salt(obj["salt"], "bundle salt"),
            inputs=tensors_from_json(obj["inputs"], "bundle input"),
            outputs=tensors_from_json(obj["outputs"], "bundle output"),
            log_proof=obj["log_proof"],
            attestations=tuple(obj["attestations"]),
            zk_proof=obj["zk_proof"],
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Bundle:
        return cls.from_json(parse_json(data, "bundle"))

    def save(self, path: Path) -> None:
        atomic_write(Path(path), self.to_bytes())

    @classmethod
    def load(cls, path: Path) -> Bundle:
        path = Path(path)
        try:
            size = path.stat().st_size
        except FileNotFoundError as exc:
            raise NotFound(f"bundle {path}: no such file") from exc
        if size > MAX_BUNDLE_BYTES:
            raise InvalidInput(f"bundle {path}: {size} bytes is over the {MAX_BUNDLE_BYTES}-byte limit")
        try:
            return cls.from_bytes(path.read_bytes())
        except InvalidInput as exc:
            raise InvalidInput(f"bundle {path}: {exc}") from exc
