"""Salted commitments to a request's inputs and outputs (issue 11: nothing public lets anyone confirm a guess).

A receipt, its log leaf and every attestation carry `commit(salt, D)` = SHA-256(salt || D), where D is the
unsalted tensor digest and the salt is 32 random bytes per request. The salt travels only in the client's
bundle (and to authenticated auditors), so a low-entropy input cannot be confirmed by hashing guesses against
anything public, while whoever holds the bundle proves everything an unsalted digest proved. An on-chain slash
opens two leaves by revealing their salts and unsalted digests, never the inputs.
"""

from __future__ import annotations

import hashlib
import re
import secrets

from veriml.codec import Digest
from veriml.errors import InvalidInput

SALT_BYTES = 32
PRIVACY_MODES = ("private", "auditable", "public")
DEFAULT_PRIVACY = "auditable"
_SALT_TEXT = re.compile(r"[0-9a-f]{64}")


def new_salt() -> bytes:
    return secrets.token_bytes(SALT_BYTES)


def commit(salt: bytes, digest: Digest) -> Digest:
    if len(salt) != SALT_BYTES:
        raise InvalidInput(f"salt: expected {SALT_BYTES} bytes, got {len(salt)}")
    return Digest("sha256", hashlib.sha256(salt + digest.value).digest())


def parse_salt(text: object, what: str = "salt") -> bytes:
    """A salt in its one text form: 64 lower-case hex digits."""
    if not isinstance(text, str) or not _SALT_TEXT.fullmatch(text):
        raise InvalidInput(f"{what}: expected {2 * SALT_BYTES} lower-case hex digits")
    return bytes.fromhex(text)


def check_privacy(mode: object) -> str:
    if mode not in PRIVACY_MODES:
        raise InvalidInput(f"privacy: expected one of {', '.join(PRIVACY_MODES)}, got {mode!r}")
    return mode  # type: ignore[return-value]
