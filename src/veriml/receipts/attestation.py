"""Attestations: what a node signs after re-executing another node's receipt — agree, disagree, or not
comparable (another runtime class under an exact policy). A disagreement together with the audited node's own
signed receipt is evidence that one of the two lied."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from veriml.codec import Digest, expect_document
from veriml.codec.clock import utc_timestamp
from veriml.errors import InvalidInput, shown
from veriml.identity import Domain, Signed, SigningKey, VerifyingKey

FORMAT_VERSION = 2
VERDICTS = ("agree", "disagree", "not-comparable")
_FIELDS = {"format_version", "receipt", "subject", "manifest", "input_commitment", "claimed_output",
           "observed_output", "verdict", "detail", "runtime_class", "timestamp", "auditor"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Attestation:
    receipt: Digest  # the audited receipt's id
    subject: VerifyingKey  # the node that signed it
    manifest: Digest
    input_commitment: Digest
    claimed_output: Digest  # the receipt's output commitment
    observed_output: Digest  # commit(the receipt's salt, digest of the outputs the auditor observed)
    verdict: str
    detail: str
    runtime_class: str
    timestamp: str
    auditor: VerifyingKey

    DOMAIN: ClassVar[Domain] = Domain.ATTESTATION

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise InvalidInput(f"attestation: verdict must be one of {VERDICTS}, got {shown(self.verdict)}")
        if not isinstance(self.detail, str) or not isinstance(self.runtime_class, str):
            raise InvalidInput("attestation: detail and runtime_class must be text")

    @property
    def signer(self) -> VerifyingKey:
        return self.auditor

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "receipt": str(self.receipt),
            "subject": self.subject.vkey,
            "manifest": str(self.manifest),
            "input_commitment": str(self.input_commitment),
            "claimed_output": str(self.claimed_output),
            "observed_output": str(self.observed_output),
            "verdict": self.verdict,
            "detail": self.detail,
            "runtime_class": self.runtime_class,
            "timestamp": self.timestamp,
            "auditor": self.auditor.vkey,
        }

    def to_canonical_bytes(self) -> bytes:
        from veriml.codec import canonical_json_of_plain

        return canonical_json_of_plain(self.to_json())

    @classmethod
    def from_json(cls, obj: object) -> Attestation:
        obj = expect_document(obj, _FIELDS, "attestation", FORMAT_VERSION)
        return cls(
            receipt=Digest.parse(obj["receipt"], "attestation receipt"),
            subject=VerifyingKey.parse(obj["subject"], "attestation subject"),
            manifest=Digest.parse(obj["manifest"], "attestation manifest"),
            input_commitment=Digest.parse(obj["input_commitment"], "attestation input_commitment"),
            claimed_output=Digest.parse(obj["claimed_output"], "attestation claimed_output"),
            observed_output=Digest.parse(obj["observed_output"], "attestation observed_output"),
            verdict=obj["verdict"],
            detail=obj["detail"],
            runtime_class=obj["runtime_class"],
            timestamp=obj["timestamp"],
            auditor=VerifyingKey.parse(obj["auditor"], "attestation auditor"),
        )


SignedAttestation = Signed[Attestation]


def sign_attestation(auditor: SigningKey, **fields: Any) -> SignedAttestation:
    return Signed.sign(Attestation(auditor=auditor.public, timestamp=utc_timestamp(), **fields), auditor)


def parse_signed_attestation(obj: object) -> SignedAttestation:
    return Signed.from_json(Attestation, obj, "attestation")
