"""C2SP tlog-checkpoint v1.0.0 note text, and C2SP tlog-cosignature v1 (Ed25519) witness cosignatures."""

from __future__ import annotations

import base64
import binascii
import re
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass

from veriml.errors import InvalidInput, VerificationFailed
from veriml.identity import SigningKey, VerifyingKey
from veriml.tlog.merkle import HASH_SIZE, MAX_SIZE
from veriml.tlog.note import Note, NoteSignature, is_cosigner, parse_note, verify_note

_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")


def parse_decimal(text: str, what: str, limit: int = MAX_SIZE) -> int:
    """An ASCII decimal with no leading zeroes, as every C2SP size and index is written."""
    if not _DECIMAL.fullmatch(text):
        raise InvalidInput(f"{what}: {text!r:.40} is not a decimal number without leading zeroes")
    value = int(text)
    if value >= limit:
        raise InvalidInput(f"{what}: {value} is too large")
    return value


def parse_hash(text: str, what: str) -> bytes:
    try:
        value = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise InvalidInput(f"{what}: not valid base64") from exc
    if len(value) != HASH_SIZE or base64.b64encode(value).decode("ascii") != text:
        raise InvalidInput(f"{what}: expected the base64 of a {HASH_SIZE}-byte hash")
    return value


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        return "".join(f"{line}\n" for line in (self.origin, str(self.size), b64(self.root), *self.extensions))

    @classmethod
    def parse_text(cls, text: str, what: str = "checkpoint") -> Checkpoint:
        lines = text.split("\n")
        if lines[-1] != "" or len(lines) < 4:
            raise InvalidInput(f"{what}: expected at least 3 lines (origin, size, root hash), each ending in newline")
        lines = lines[:-1]
        origin, size, root, *extensions = lines
        if not origin:
            raise InvalidInput(f"{what}: the origin line is empty")
        if any(not line for line in extensions):
            raise InvalidInput(f"{what}: extension lines must not be empty")
        return cls(
            origin, parse_decimal(size, f"{what} size"), parse_hash(root, f"{what} root hash"), tuple(extensions)
        )


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    checkpoint: Checkpoint
    note: Note

    @classmethod
    def parse(cls, data: bytes | str, what: str = "checkpoint") -> SignedCheckpoint:
        note = parse_note(data, what)
        return cls(Checkpoint.parse_text(note.text, what), note)

    def to_text(self) -> str:
        return self.note.to_text()

    def with_cosignatures(self, signatures: Sequence[NoteSignature]) -> SignedCheckpoint:
        return SignedCheckpoint(self.checkpoint, self.note.with_signatures(signatures))


def cosignature_message(checkpoint_text: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n{checkpoint_text}".encode()


def cosign(checkpoint: Checkpoint, key: SigningKey, timestamp: int | None = None) -> NoteSignature:
    """A witness cosignature (C2SP tlog-cosignature, Ed25519): key ID of type 0x04, then u64 BE time and signature."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    signature = key.sign_raw(cosignature_message(checkpoint.text(), timestamp))
    return NoteSignature(key.name, key.cosigner_public.key_hash, struct.pack(">Q", timestamp) + signature)


def verify_cosignature(checkpoint: Checkpoint, signature: NoteSignature, witness: VerifyingKey) -> int:
    """Check one witness cosignature; return its timestamp."""
    if len(signature.signature) != 8 + 64:
        raise VerificationFailed(f"cosignature by {witness.key_id}: wrong length")
    (timestamp,) = struct.unpack(">Q", signature.signature[:8])
    if timestamp >= 1 << 63:
        raise VerificationFailed(f"cosignature by {witness.key_id}: timestamp out of range")
    witness.verify_raw(cosignature_message(checkpoint.text(), timestamp), signature.signature[8:])
    return timestamp


@dataclass(frozen=True, slots=True)
class TrustPolicy:
    """When a checkpoint is trusted: signed by the log's key and cosigned by at least `quorum` of `witnesses`.

    Witnesses are counted by their Ed25519 public key bytes: a key listed twice, or under another name, is one
    witness, and the log's own key is none (a log cannot witness itself)."""

    log_key: VerifyingKey
    witnesses: tuple[VerifyingKey, ...] = ()
    quorum: int = 0

    def __post_init__(self) -> None:
        if any(not is_cosigner(w) for w in self.witnesses):
            raise InvalidInput("trust policy: witness keys must be cosigner keys (signature type 0x04)")
        distinct = len(self.distinct_witnesses)
        if not 0 <= self.quorum <= distinct:
            raise InvalidInput(
                f"trust policy: quorum {self.quorum} of {distinct} distinct witness key(s) is impossible "
                f"({len(self.witnesses)} given; a repeated or renamed key counts once, the log's own key not at all)"
            )

    @property
    def distinct_witnesses(self) -> frozenset[bytes]:
        """The public key bytes of the witnesses that can count: distinct, and not the log's own."""
        return frozenset(w.public for w in self.witnesses) - {self.log_key.public}

    def check(self, signed: SignedCheckpoint, what: str = "checkpoint") -> list[VerifyingKey]:
        """Raise VerificationFailed unless the checkpoint is trusted; return the witnesses that cosigned it, one
        per distinct public key, never the log's own key."""
        if signed.checkpoint.origin != self.log_key.name:
            raise VerificationFailed(
                f"{what}: origin {signed.checkpoint.origin!r} is not the log's key name {self.log_key.name!r}"
            )
        verify_note(signed.note, [self.log_key], what)
        cosigned: dict[bytes, VerifyingKey] = {}
        for witness in self.witnesses:
            if witness.public == self.log_key.public or witness.public in cosigned:
                continue
            for signature in signed.note.signatures:
                if signature.matches(witness):
                    try:
                        verify_cosignature(signed.checkpoint, signature, witness)
                    except VerificationFailed as exc:
                        raise VerificationFailed(f"{what}: {exc}") from exc
                    cosigned[witness.public] = witness
                    break
        if len(cosigned) < self.quorum:
            raise VerificationFailed(
                f"{what}: cosigned by {len(cosigned)} of the trusted witnesses, {self.quorum} required "
                "(counted by distinct key, never the log's own)"
            )
        return list(cosigned.values())
