"""C2SP signed-note v1.0.0: text signed by one or more keys.

    <text, ending in a newline>
    <blank line>
    — <key name> <base64(4-byte key ID || signature)>     (one line per signature)

Verification follows the spec: signatures by unknown keys are ignored; a known key's bad signature rejects the
whole note; a note with no verified signature by a known key is rejected.
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from veriml.errors import InvalidInput, VerificationFailed
from veriml.identity import SigningKey, VerifyingKey
from veriml.identity.keys import COSIGNATURE_ED25519, ED25519, check_key_name

SIGNATURE_PREFIX = "— "  # em dash, space
MAX_SIGNATURES = 100  # the spec asks verifiers to accept at least 16
MAX_NOTE_BYTES = 1 << 16


@dataclass(frozen=True, slots=True)
class NoteSignature:
    name: str
    key_id: bytes  # 4 bytes
    signature: bytes  # what follows the key ID: the algorithm's signature (with a timestamp for cosignatures)

    def line(self) -> str:
        return f"{SIGNATURE_PREFIX}{self.name} {base64.b64encode(self.key_id + self.signature).decode('ascii')}\n"

    def matches(self, key: VerifyingKey) -> bool:
        return self.name == key.name and self.key_id == key.key_hash


@dataclass(frozen=True, slots=True)
class Note:
    text: str  # ends with "\n"
    signatures: tuple[NoteSignature, ...]

    def to_text(self) -> str:
        return _note_text(self)

    def to_bytes(self) -> bytes:
        return self.to_text().encode("utf-8")

    def with_signatures(self, extra: Iterable[NoteSignature]) -> Note:
        """This note with more signatures; a signature by a key already present replaces nothing and is dropped."""
        present = {(s.name, s.key_id) for s in self.signatures}
        added = [s for s in extra if (s.name, s.key_id) not in present]
        return Note(self.text, self.signatures + tuple(added))


@functools.lru_cache(maxsize=64)
def _note_text(note: Note) -> str:
    """A node writes its newest checkpoint into every answer: each note's text is made once."""
    return note.text + "\n" + "".join(signature.line() for signature in note.signatures)


def _check_text(text: str, what: str) -> None:
    if not text.endswith("\n"):
        raise InvalidInput(f"{what}: note text must end with a newline")
    for ch in text:
        if ch < " " and ch != "\n":
            raise InvalidInput(f"{what}: note holds control character {ord(ch):#04x}")


def parse_note(data: bytes | str, what: str = "signed note") -> Note:
    """Parse a signed note strictly; signatures are not checked here (see `verify_note`)."""
    if isinstance(data, bytes):
        if len(data) > MAX_NOTE_BYTES:
            raise InvalidInput(f"{what}: larger than {MAX_NOTE_BYTES} bytes")
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"{what}: not UTF-8") from exc
    _check_text(data, what)
    split = data.rfind("\n\n")
    if split < 0:
        raise InvalidInput(f"{what}: no blank line between text and signatures")
    text, signature_block = data[: split + 1], data[split + 2 :]
    lines = signature_block.split("\n")[:-1]
    if not lines:
        raise InvalidInput(f"{what}: no signature lines")
    if len(lines) > MAX_SIGNATURES:
        raise InvalidInput(f"{what}: {len(lines)} signatures, more than {MAX_SIGNATURES}")
    signatures = []
    seen: set[tuple[str, bytes]] = set()
    for number, line in enumerate(lines, 1):
        signature = _parse_signature_line(line, f"{what} signature line {number}")
        if (signature.name, signature.key_id) in seen:
            raise InvalidInput(f"{what}: key {signature.name}+{signature.key_id.hex()} signs twice")
        seen.add((signature.name, signature.key_id))
        signatures.append(signature)
    return Note(text, tuple(signatures))


def _parse_signature_line(line: str, what: str) -> NoteSignature:
    if not line.startswith(SIGNATURE_PREFIX):
        raise InvalidInput(f"{what}: must start with '— ' (em dash, space)")
    name, space, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
    if not space or " " in encoded:
        raise InvalidInput(f"{what}: expected '— <key name> <base64 signature>'")
    check_key_name(name)
    try:
        raw = base64.b64decode(encoded.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise InvalidInput(f"{what}: signature is not valid base64") from exc
    if len(raw) < 5:
        raise InvalidInput(f"{what}: signature shorter than a key ID and a signature")
    return NoteSignature(name, raw[:4], raw[4:])


def sign_note(text: str, key: SigningKey) -> Note:
    """A note over `text`, signed by `key` as a note signer (type 0x01)."""
    _check_text(text, "note")
    return Note(text, (NoteSignature(key.name, key.public.key_hash, key.sign_raw(text.encode("utf-8"))),))


def verify_note(note: Note, keys: Sequence[VerifyingKey], what: str = "signed note") -> list[VerifyingKey]:
    """Check every signature by a known note-signer key (type 0x01); return the keys that signed.

    Unknown signatures are ignored; a known key's failing signature rejects the note; so does having none."""
    message = note.text.encode("utf-8")
    verified = []
    for key in keys:
        if key.sig_type != ED25519:
            continue
        for signature in note.signatures:
            if signature.matches(key):
                if len(signature.signature) != 64:
                    raise VerificationFailed(f"{what}: signature by {key.key_id} has the wrong length")
                try:
                    key.verify_raw(message, signature.signature)
                except VerificationFailed as exc:
                    raise VerificationFailed(f"{what}: {exc}") from exc
                verified.append(key)
    if not verified:
        names = ", ".join(key.key_id for key in keys) or "none given"
        raise VerificationFailed(f"{what}: not signed by any of the expected keys ({names})")
    return verified


def is_cosigner(key: VerifyingKey) -> bool:
    return key.sig_type == COSIGNATURE_ED25519
