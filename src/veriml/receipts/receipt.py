"""The receipt (DESIGN §2): what a node signs for each inference, binding model version, input, output, runtime
and node. Inputs and outputs travel beside it; salted commitments to their digests bind them (see
`veriml.receipts.commitment`), and `privacy` records who may see them besides the client and the node."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import Any, ClassVar

from veriml.codec import Digest, Fragment, expect_document
from veriml.codec.clock import utc_timestamp
from veriml.errors import InvalidInput, shown
from veriml.identity import Domain, Signed, SigningKey, VerifyingKey
from veriml.receipts.commitment import DEFAULT_PRIVACY, check_privacy
from veriml.runtime import RuntimeFingerprint

FORMAT_VERSION = 2
MODES = ("signed", "logged", "reexecuted", "quorum", "proven")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")
_FIELDS = {
    "format_version", "manifest", "blob", "input_commitment", "output_commitment", "runtime", "mode", "privacy",
    "request_id", "timestamp", "node",
}  # fmt: skip


def new_request_id() -> str:
    return secrets.token_hex(12)


@dataclass(frozen=True, slots=True)
class Receipt:
    manifest: Digest
    blob: Digest
    input_commitment: Digest  # commit(salt, digest of the inputs)
    output_commitment: Digest  # commit(salt, digest of the outputs)
    runtime: RuntimeFingerprint
    mode: str
    privacy: str  # "private", "auditable" or "public": who besides client and node may see inputs and outputs
    request_id: str
    timestamp: str
    node: VerifyingKey

    DOMAIN: ClassVar[Domain] = Domain.RECEIPT

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InvalidInput(f"receipt: mode must be one of {MODES}, got {shown(self.mode)}")
        check_privacy(self.privacy)
        if not isinstance(self.request_id, str) or not _REQUEST_ID.fullmatch(self.request_id):
            raise InvalidInput("receipt: request_id must be 1-128 characters of [A-Za-z0-9._:-]")
        if not isinstance(self.timestamp, str) or not _TIMESTAMP.fullmatch(self.timestamp):
            raise InvalidInput(
                f"receipt: timestamp must be RFC 3339 UTC with microseconds, got {shown(self.timestamp)}"
            )

    @property
    def signer(self) -> VerifyingKey:
        return self.node

    def to_json(self) -> dict[str, Any]:
        return self._fields(self.runtime.fields)

    def to_canonical_bytes(self) -> bytes:
        # Written field by field in RFC 8785 order (keys sorted, strings escaped as JSON does): a node writes this
        # per inference. The fingerprint is the same for every receipt a node signs; its canonical bytes are reused.
        # Property-tested equal to canonical_json(self.to_json()).
        text = encode_basestring
        return (
            f'{{"blob":{text(str(self.blob))},"format_version":{FORMAT_VERSION},'
            f'"input_commitment":{text(str(self.input_commitment))},"manifest":{text(str(self.manifest))},'
            f'"mode":{text(self.mode)},"node":{text(self.node.vkey)},'
            f'"output_commitment":{text(str(self.output_commitment))},"privacy":{text(self.privacy)},'
            f'"request_id":{text(self.request_id)},"runtime":{Fragment(self.runtime.canonical).text},'
            f'"timestamp":{text(self.timestamp)}}}'
        ).encode()

    def _fields(self, runtime: object) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "manifest": str(self.manifest),
            "blob": str(self.blob),
            "input_commitment": str(self.input_commitment),
            "output_commitment": str(self.output_commitment),
            "runtime": runtime,
            "mode": self.mode,
            "privacy": self.privacy,
            "request_id": self.request_id,
            "timestamp": self.timestamp,
            "node": self.node.vkey,
        }

    @classmethod
    def from_json(cls, obj: object) -> Receipt:
        obj = expect_document(obj, _FIELDS, "receipt", FORMAT_VERSION)
        return cls(
            manifest=Digest.parse(obj["manifest"], "receipt manifest"),
            blob=Digest.parse(obj["blob"], "receipt blob"),
            input_commitment=Digest.parse(obj["input_commitment"], "receipt input_commitment"),
            output_commitment=Digest.parse(obj["output_commitment"], "receipt output_commitment"),
            runtime=RuntimeFingerprint(obj["runtime"]),
            mode=obj["mode"],
            privacy=obj["privacy"],
            request_id=obj["request_id"],
            timestamp=obj["timestamp"],
            node=VerifyingKey.parse(obj["node"], "receipt node"),
        )


SignedReceipt = Signed[Receipt]


def sign_receipt(
    node_key: SigningKey,
    *,
    manifest: Digest,
    blob: Digest,
    input_commitment: Digest,
    output_commitment: Digest,
    runtime: RuntimeFingerprint,
    mode: str = "signed",
    privacy: str = DEFAULT_PRIVACY,
    request_id: str | None = None,
    timestamp: str | None = None,
) -> SignedReceipt:
    receipt = Receipt(
        manifest=manifest,
        blob=blob,
        input_commitment=input_commitment,
        output_commitment=output_commitment,
        runtime=runtime,
        mode=mode,
        privacy=privacy,
        request_id=request_id or new_request_id(),
        timestamp=timestamp or utc_timestamp(),
        node=node_key.public,
    )
    return Signed.sign(receipt, node_key)


def parse_signed_receipt(obj: object) -> SignedReceipt:
    return Signed.from_json(Receipt, obj, "receipt")
