"""A signed document: a typed body, its RFC 8785 bytes, and a domain-separated signature by the body's signer.

JSON form: {"body": {...}, "signature": "<base64>"}. The signer's key is inside the body (a manifest names its
publisher, a receipt its node), so the signature covers who signed as well as what was signed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar

from veriml.codec import Digest, b64decode, b64encode, canonical_json_of_plain
from veriml.errors import InvalidInput, VerificationFailed
from veriml.identity.domain import Domain
from veriml.identity.keys import SigningKey, VerifyingKey


class SignedBody(Protocol):
    DOMAIN: ClassVar[Domain]

    @property
    def signer(self) -> VerifyingKey: ...

    def to_json(self) -> dict[str, Any]: ...

    def to_canonical_bytes(self) -> bytes: ...

    @classmethod
    def from_json(cls, obj: object) -> Self: ...


BodyT = TypeVar("BodyT", bound=SignedBody)


@dataclass(frozen=True, slots=True)
class Signed(Generic[BodyT]):
    body: BodyT
    signature: bytes
    canonical: bytes  # the RFC 8785 bytes of the body: what was signed, and what the id hashes
    # Caches, never copied by dataclasses.replace (init=False): a copy with another signature must not keep them.
    _json: bytes | None = field(default=None, init=False, compare=False, repr=False)  # canonical_json(), once made
    _id: Digest | None = field(default=None, init=False, compare=False, repr=False)  # id, once hashed

    @classmethod
    def sign(cls, body: BodyT, key: SigningKey) -> Signed[BodyT]:
        if key.public != body.signer:
            raise InvalidInput(f"document names signer {body.signer.key_id}, but the key is {key.key_id}")
        canonical = body.to_canonical_bytes()
        return cls(body, key.sign(body.DOMAIN, canonical), canonical)

    @property
    def id(self) -> Digest:
        if self._id is None:
            object.__setattr__(self, "_id", Digest.of(self.canonical))
        return self._id  # type: ignore[return-value]

    def check_signature(self) -> None:
        """Raise VerificationFailed unless the signature is the body's signer's, under the body's domain."""
        self.body.signer.verify(self.body.DOMAIN, self.canonical, self.signature)

    def to_json(self) -> dict[str, Any]:
        return {"body": self.body.to_json(), "signature": b64encode(self.signature)}

    def canonical_json(self) -> bytes:
        """The RFC 8785 bytes of `to_json()`, {"body": ..., "signature": ...}, from the body's canonical bytes (what
        was signed) without walking the body again; made once per document (a manifest goes into every bundle)."""
        if self._json is None:
            text = b'{"body":' + self.canonical + b',"signature":"' + b64encode(self.signature).encode() + b'"}'
            object.__setattr__(self, "_json", text)
        return self._json  # type: ignore[return-value]

    @classmethod
    def from_json(cls, body_type: type[BodyT], obj: object, what: str) -> Signed[BodyT]:
        if not isinstance(obj, dict) or set(obj) != {"body", "signature"}:
            raise InvalidInput(f"{what}: expected an object with exactly body and signature")
        body = body_type.from_json(obj["body"])
        canonical = body.to_canonical_bytes()
        # The typed body must say exactly what the received JSON said; anything it dropped or
        # normalized would be unsigned content riding along.
        if canonical != canonical_json_of_plain(obj["body"]):
            raise InvalidInput(f"{what}: body is not in canonical form")
        signature = b64decode(obj["signature"], f"{what} signature")
        if len(signature) != 64:
            raise InvalidInput(f"{what}: an Ed25519 signature has 64 bytes, got {len(signature)}")
        return cls(body, signature, canonical)

    def verified(self) -> Signed[BodyT]:
        """This document, after its signature checks out (raises VerificationFailed otherwise)."""
        try:
            self.check_signature()
        except VerificationFailed as exc:
            raise VerificationFailed(f"{self.body.DOMAIN.value} {self.id}: {exc}") from exc
        return self
