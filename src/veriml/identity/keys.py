"""Ed25519 keys with C2SP signed-note v1.0.0 names.

A verifier key is written `<name>+<hash>+<base64(0x01 || public key)>`, where hash is the first four bytes of
SHA-256(name || "\\n" || 0x01 || public key) in hex; `<name>+<hash>` is the key's id (a node id, for a node).
A key file holds the signer key in the same family of text, `PRIVATE+KEY+<name>+<hash>+<base64(0x01 || seed)>`,
mode 0600; a key file that group or others can read is refused.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from nacl.bindings import crypto_core_ed25519_is_valid_point, crypto_sign_open
from nacl.exceptions import BadSignatureError

from veriml.errors import InvalidInput, NotFound, PermissionDenied, VerificationFailed
from veriml.fsutil import atomic_write
from veriml.identity.domain import Domain

ED25519 = 0x01  # C2SP signed-note signature type for Ed25519
COSIGNATURE_ED25519 = 0x04  # C2SP tlog-cosignature: timestamped Ed25519 witness cosignatures
_SIGNATURE_TYPES = (ED25519, COSIGNATURE_ED25519)
_PRIVATE_PREFIX = "PRIVATE+KEY+"


def check_key_name(name: str) -> str:
    # C2SP signed-note: a key name is non-empty, with no Unicode spaces and no plus signs.
    if not name or "+" in name or any(ch.isspace() for ch in name) or not name.isprintable():
        raise InvalidInput(f"key name {name!r}: must be non-empty, printable, with no spaces or '+'")
    return name


def _key_hash(name: str, public: bytes, sig_type: int) -> bytes:
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([sig_type]) + public).digest()[:4]


VERIFIED_KEPT = 4096
_VERIFIED: dict[bytes, None] = {}  # tokens of signatures that verified, oldest first


@dataclass(frozen=True, slots=True)
class VerifyingKey:
    name: str
    public: bytes
    _key: Ed25519PublicKey = field(repr=False, compare=False)
    # 0x01 for keys that sign notes (nodes, publishers, logs); 0x04 for the same kind of key cosigning
    # checkpoints as a witness. The type is part of the key id, so one key can never pass for the other role.
    sig_type: int = ED25519
    # Derived once: receipts name their node on every inference.
    key_hash: bytes = field(init=False, repr=False, compare=False)
    key_id: str = field(init=False, repr=False, compare=False)
    vkey: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        key_hash = _key_hash(self.name, self.public, self.sig_type)
        key_id = f"{self.name}+{key_hash.hex()}"
        object.__setattr__(self, "key_hash", key_hash)
        object.__setattr__(self, "key_id", key_id)
        encoded = base64.b64encode(bytes([self.sig_type]) + self.public).decode("ascii")
        object.__setattr__(self, "vkey", f"{key_id}+{encoded}")

    @classmethod
    def from_public_bytes(cls, name: str, public: bytes, sig_type: int = ED25519) -> VerifyingKey:
        check_key_name(name)
        if len(public) != 32:
            raise InvalidInput(f"key {name!r}: an Ed25519 public key has 32 bytes, got {len(public)}")
        if sig_type not in _SIGNATURE_TYPES:
            raise InvalidInput(f"key {name!r}: signature type {sig_type:#04x} is not supported")
        # OpenSSL (and so `cryptography`) checks a signature against any 32 bytes that decode to a curve point. A
        # point of small order makes signatures anyone can forge: with the neutral point as key, R = the neutral
        # point and S = 0 verify for every message. A party choosing such a key could disown everything "signed"
        # with it and let others sign in its name. libsodium's check refuses small-order, off-curve, mixed-order
        # and non-canonical keys; an honestly generated key is never one of them.
        if not crypto_core_ed25519_is_valid_point(public):
            raise InvalidInput(
                f"key {name!r}: not a valid Ed25519 public key (of small order, off the curve, outside the prime-order "
                "subgroup or not canonically encoded): signatures under it could be forged by anyone"
            )
        return cls(name, public, Ed25519PublicKey.from_public_bytes(public), sig_type)

    def as_type(self, sig_type: int) -> VerifyingKey:
        """The same key in another signature role (a node's key as a witness key, say)."""
        if sig_type not in _SIGNATURE_TYPES:
            raise InvalidInput(f"key {self.name!r}: signature type {sig_type:#04x} is not supported")
        return VerifyingKey(self.name, self.public, self._key, sig_type)  # checked when this key was made

    @classmethod
    def parse(cls, text: object, what: str = "verifier key", sig_type: int = ED25519) -> VerifyingKey:
        """Parse `<name>+<hash>+<base64 key>`, checking that the hash matches name and key, and that the key
        is of the expected signature type (0x01 signer, 0x04 witness cosigner)."""
        if isinstance(text, str) and len(text) <= _MAX_KEY_TEXT:
            return _parse_key(cls, text, what, sig_type)  # every receipt names its node: parsed once per key
        return cls._parse(text, what, sig_type)

    @classmethod
    def _parse(cls, text: object, what: str, sig_type: int) -> VerifyingKey:
        if not isinstance(text, str):
            raise InvalidInput(f"{what}: expected text, got {type(text).__name__}")
        parts = text.split("+", 2)  # base64 may itself contain "+"
        if len(parts) != 3 or len(parts[1]) != 8:
            raise InvalidInput(f"{what}: expected '<name>+<8 hex digits>+<base64 key>', got {text!r:.100}")
        name, hash_hex, key_b64 = parts
        try:
            key = base64.b64decode(key_b64, validate=True)
            claimed = bytes.fromhex(hash_hex)
        except (binascii.Error, ValueError) as exc:
            raise InvalidInput(f"{what}: bad hash or base64 in {text!r:.100}") from exc
        if len(key) != 33 or key[0] not in _SIGNATURE_TYPES:
            raise InvalidInput(f"{what}: not an Ed25519 key (type byte 0x01 or 0x04 and 32-byte key expected)")
        if key[0] != sig_type:
            raise InvalidInput(f"{what}: a key of signature type {key[0]:#04x}, expected {sig_type:#04x}")
        verifying = cls.from_public_bytes(name, key[1:], key[0])
        if verifying.key_hash != claimed or verifying.vkey != text:
            raise InvalidInput(f"{what}: key hash does not match the name and key in {text!r:.100}")
        return verifying

    def verify(self, domain: Domain, payload: bytes, signature: bytes) -> None:
        """Raise VerificationFailed unless `signature` signs `payload` under `domain` with this key."""
        self.verify_raw(domain.message(payload), signature)

    def verify_raw(self, message: bytes, signature: bytes) -> None:
        """Check a signature over bytes with no domain prefix (C2SP notes define their own framing). A signature
        that verified is remembered (by the SHA-256 of key, signature and message) for a while: the same manifest
        comes back in every bundle of a model, and in every answer of a quorum."""
        token = hashlib.sha256(self.public + signature + message).digest() if len(signature) == 64 else None
        if token is not None and token in _VERIFIED:
            return
        try:
            crypto_sign_open(signature + message, self.public)  # libsodium: twice as fast as OpenSSL here
        except (BadSignatureError, ValueError, TypeError):
            # libsodium also refuses a few signatures OpenSSL accepts (R of small order, which only the key's
            # holder can make): the verdict stays OpenSSL's, as it was, and only a refused signature pays twice.
            try:
                self._key.verify(signature, message)
            except InvalidSignature as exc:
                raise VerificationFailed(f"signature is not valid for key {self.key_id}") from exc
        if token is not None:
            _VERIFIED[token] = None
            if len(_VERIFIED) > VERIFIED_KEPT:
                _VERIFIED.pop(next(iter(_VERIFIED)), None)  # the oldest

    def __str__(self) -> str:
        return self.vkey


def _fast_signer(private: Ed25519PrivateKey) -> Any:
    """PyNaCl's signing function for the key when installed (libsodium signs faster here than OpenSSL through
    cryptography; Ed25519 signatures are deterministic, so the bytes are the same: property-tested), else None."""
    try:
        from nacl.bindings import crypto_sign
        from nacl.signing import SigningKey as NaclKey
    except ImportError:
        return None
    secret = NaclKey(private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))._signing_key
    return lambda message: crypto_sign(message, secret)[:64]


@dataclass(frozen=True, slots=True)
class SigningKey:
    name: str
    _private: Ed25519PrivateKey = field(repr=False, compare=False)
    public: VerifyingKey = field(compare=True)
    _sign: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def generate(cls, name: str) -> SigningKey:
        return cls._from_private(check_key_name(name), Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> SigningKey:
        if len(seed) != 32:
            raise InvalidInput(f"key {name!r}: an Ed25519 seed has 32 bytes, got {len(seed)}")
        return cls._from_private(check_key_name(name), Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def _from_private(cls, name: str, private: Ed25519PrivateKey) -> SigningKey:
        public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return cls(name, private, VerifyingKey.from_public_bytes(name, public), _fast_signer(private))

    @property
    def key_id(self) -> str:
        return self.public.key_id

    def renamed(self, name: str) -> SigningKey:
        """The same private key under another name (the name is part of the key id)."""
        return SigningKey._from_private(check_key_name(name), self._private)

    @property
    def cosigner_public(self) -> VerifyingKey:
        """This key's public half in the witness role (C2SP tlog-cosignature, type 0x04)."""
        return self.public.as_type(COSIGNATURE_ED25519)

    def sign(self, domain: Domain, payload: bytes) -> bytes:
        return self.sign_raw(domain.message(payload))

    def sign_raw(self, message: bytes) -> bytes:
        """Sign bytes with no domain prefix: only for formats that frame their own messages (C2SP notes)."""
        if self._sign is not None:
            return self._sign(message)
        return self._private.sign(message)

    def private_text(self) -> str:
        seed = self._private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        encoded = base64.b64encode(bytes([ED25519]) + seed).decode("ascii")
        return f"{_PRIVATE_PREFIX}{self.key_id}+{encoded}"

    @classmethod
    def parse_private(cls, text: str, what: str = "private key") -> SigningKey:
        if not text.startswith(_PRIVATE_PREFIX):
            raise InvalidInput(f"{what}: expected text starting with {_PRIVATE_PREFIX!r}")
        parts = text[len(_PRIVATE_PREFIX) :].split("+", 2)
        if len(parts) != 3:
            raise InvalidInput(f"{what}: expected '{_PRIVATE_PREFIX}<name>+<hash>+<base64 seed>'")
        name, hash_hex, seed_b64 = parts
        try:
            seed = base64.b64decode(seed_b64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidInput(f"{what}: bad base64") from exc
        if len(seed) != 33 or seed[0] != ED25519:
            raise InvalidInput(f"{what}: not an Ed25519 key")
        key = cls.from_seed(name, seed[1:])
        if key.public.key_hash.hex() != hash_hex:
            raise InvalidInput(f"{what}: key hash does not match the name and key")
        return key

    def save(self, path: Path, overwrite: bool = False) -> None:
        """Write the key with mode 0600, atomically: a crash leaves the old file or the new, never half."""
        path = Path(path)
        if path.exists() and not overwrite:
            raise InvalidInput(f"key file {path}: already exists (refusing to overwrite a key)")
        atomic_write(path, (self.private_text() + "\n").encode("ascii"), mode=0o600)

    @classmethod
    def load(cls, path: Path) -> SigningKey:
        path = Path(path)
        try:
            mode = path.stat().st_mode
        except FileNotFoundError as exc:
            raise NotFound(f"key file {path}: does not exist") from exc
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise PermissionDenied(
                f"key file {path}: mode {stat.S_IMODE(mode):04o} lets others read it; expected 0600 "
                f"(fix with: chmod 600 {path})"
            )
        try:
            text = path.read_bytes().decode("ascii")
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"key file {path}: not ASCII text (byte {exc.start})") from exc
        return cls.parse_private(text.strip(), f"key file {path}")


_MAX_KEY_TEXT = 512  # longer key texts are refused by the parser anyway; they are not worth a cache slot


@functools.lru_cache(maxsize=1024)
def _parse_key(cls: type[VerifyingKey], text: str, what: str, sig_type: int) -> VerifyingKey:
    return cls._parse(text, what, sig_type)
