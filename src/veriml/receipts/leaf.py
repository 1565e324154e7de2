"""A receipt's transparency-log leaf: a fixed layout of five 32-byte digests, so a contract can read it.

offset   0  manifest id           (SHA-256 of the manifest's canonical body)
offset  32  input commitment      (salted: see veriml.receipts.commitment)
offset  64  output commitment
offset  96  runtime fingerprint digest
offset 128  receipt id            (SHA-256 of the receipt's canonical body; the signed receipt is kept
                                   beside the leaf, addressed by this digest)
"""

from __future__ import annotations

from dataclasses import dataclass

from veriml.codec import Digest
from veriml.errors import InvalidInput
from veriml.receipts.receipt import SignedReceipt

LEAF_SIZE = 5 * 32


@dataclass(frozen=True, slots=True)
class ReceiptLeaf:
    manifest: Digest
    input_commitment: Digest
    output_commitment: Digest
    runtime_digest: Digest
    receipt: Digest

    def to_bytes(self) -> bytes:
        fields = (self.manifest, self.input_commitment, self.output_commitment, self.runtime_digest, self.receipt)
        return b"".join(d.value for d in fields)

    @classmethod
    def from_bytes(cls, data: bytes) -> ReceiptLeaf:
        if len(data) != LEAF_SIZE:
            raise InvalidInput(f"receipt leaf: expected {LEAF_SIZE} bytes, got {len(data)}")
        return cls(*(Digest("sha256", data[i : i + 32]) for i in range(0, LEAF_SIZE, 32)))

    @classmethod
    def of(cls, receipt: SignedReceipt) -> ReceiptLeaf:
        body = receipt.body
        return cls(body.manifest, body.input_commitment, body.output_commitment, body.runtime.digest, receipt.id)
