"""The ZK document: what a publisher signs so that a node cannot swap in a verification key of its own. It names
the model manifest, every circuit artifact by content address, and the SRS it was set up with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from veriml.codec import Digest, canonical_json_of_plain, expect_document
from veriml.codec.clock import utc_timestamp
from veriml.errors import InvalidInput
from veriml.identity import Domain, Signed, SigningKey, VerifyingKey

FORMAT_VERSION = 1
SRS_KINDS = ("development", "ceremony")  # generated here (insecure: whoever made it can forge) or loaded
VISIBILITIES = ("public", "hashed")
ARTIFACTS = ("settings", "compiled", "vk", "pk", "srs")
_FIELDS = {"format_version", "manifest", "artifacts", "srs_kind", "logrows", "input_visibility",
           "output_visibility", "shape_bindings", "prover", "created", "publisher"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class ZkDocument:
    manifest: Digest
    artifacts: dict[str, Digest]  # settings, compiled, vk, pk, srs -> blob ids
    srs_kind: str
    logrows: int
    input_visibility: str
    output_visibility: str
    shape_bindings: dict[str, int]  # symbolic dims fixed for the circuit, e.g. {"N": 1}
    prover: str  # "ezkl <version>"
    publisher: VerifyingKey
    created: str = field(default_factory=utc_timestamp)

    DOMAIN: ClassVar[Domain] = Domain.ZK_DOCUMENT

    def __post_init__(self) -> None:
        if set(self.artifacts) != set(ARTIFACTS):
            raise InvalidInput(f"zk document: artifacts must be exactly {ARTIFACTS}")
        if self.srs_kind not in SRS_KINDS:
            raise InvalidInput(f"zk document: srs_kind must be one of {SRS_KINDS}")
        if self.input_visibility not in VISIBILITIES or self.output_visibility != "public":
            raise InvalidInput("zk document: inputs public or hashed, outputs public")
        if type(self.logrows) is not int or not 1 <= self.logrows <= 30:
            raise InvalidInput("zk document: logrows must be 1 to 30")

    @property
    def signer(self) -> VerifyingKey:
        return self.publisher

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "manifest": str(self.manifest),
            "artifacts": {name: str(self.artifacts[name]) for name in ARTIFACTS},
            "srs_kind": self.srs_kind,
            "logrows": self.logrows,
            "input_visibility": self.input_visibility,
            "output_visibility": self.output_visibility,
            "shape_bindings": dict(self.shape_bindings),
            "prover": self.prover,
            "created": self.created,
            "publisher": self.publisher.vkey,
        }

    def to_canonical_bytes(self) -> bytes:
        return canonical_json_of_plain(self.to_json())

    @classmethod
    def from_json(cls, obj: object) -> ZkDocument:
        obj = expect_document(obj, _FIELDS, "zk document", FORMAT_VERSION)
        artifacts = obj["artifacts"]
        bindings = obj["shape_bindings"]
        if not isinstance(artifacts, dict) or not isinstance(bindings, dict):
            raise InvalidInput("zk document: artifacts and shape_bindings must be objects")
        if not all(isinstance(k, str) and type(v) is int and v >= 1 for k, v in bindings.items()):
            raise InvalidInput("zk document: shape_bindings maps symbols to positive sizes")
        if not isinstance(obj["prover"], str):
            raise InvalidInput("zk document: prover must be text")
        return cls(
            manifest=Digest.parse(obj["manifest"], "zk document manifest"),
            artifacts={name: Digest.parse(value, f"zk artifact {name}") for name, value in artifacts.items()},
            srs_kind=obj["srs_kind"],
            logrows=obj["logrows"],
            input_visibility=obj["input_visibility"],
            output_visibility=obj["output_visibility"],
            shape_bindings=bindings,
            prover=obj["prover"],
            created=obj["created"],
            publisher=VerifyingKey.parse(obj["publisher"], "zk document publisher"),
        )


SignedZkDocument = Signed[ZkDocument]


def sign_zk_document(document: ZkDocument, publisher: SigningKey) -> SignedZkDocument:
    return Signed.sign(document, publisher)


def parse_signed_zk_document(obj: object) -> SignedZkDocument:
    return Signed.from_json(ZkDocument, obj, "zk document")
