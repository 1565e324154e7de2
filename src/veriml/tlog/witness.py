"""A C2SP tlog-witness: cosigns a log's checkpoint only when it is consistent with the last one it cosigned.

Per log origin it keeps, durably, the size and root it last cosigned. `add_checkpoint` takes the body of the
tlog-witness `add-checkpoint` request (old size line, consistency proof lines, blank line, checkpoint note)
and answers with cosignature lines, or raises what the protocol answers with:

    unknown origin -> NotFound (404)            no trusted log signature -> PermissionDenied (403)
    malformed, old size > size -> InvalidInput (400)
    old size is not the recorded size, or same size with another root -> StaleOldSize / Conflict (409)
    consistency proof does not verify -> VerificationFailed (422)
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from veriml.errors import Conflict, InvalidInput, NotFound, PermissionDenied, VerificationFailed
from veriml.identity import SigningKey, VerifyingKey
from veriml.tlog import merkle
from veriml.tlog.checkpoint import SignedCheckpoint, b64, cosign, parse_decimal, parse_hash
from veriml.tlog.note import NoteSignature, verify_note

MAX_PROOF_LINES = 63
MAX_REQUEST_BYTES = 1 << 16


class StaleOldSize(Conflict):
    """The request's old size is not the size this witness last cosigned; `size` says which it is."""

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message)
        self.size = size


def add_checkpoint_body(old_size: int, proof: Sequence[bytes], checkpoint: SignedCheckpoint) -> bytes:
    lines = [f"old {old_size}", *(b64(h) for h in proof)]
    return ("\n".join(lines) + "\n\n" + checkpoint.to_text()).encode("utf-8")


def parse_add_checkpoint(body: bytes) -> tuple[int, list[bytes], SignedCheckpoint]:
    if len(body) > MAX_REQUEST_BYTES:
        raise InvalidInput(f"add-checkpoint: request larger than {MAX_REQUEST_BYTES} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput("add-checkpoint: request is not UTF-8") from exc
    head, separator, note = text.partition("\n\n")
    if not separator:
        raise InvalidInput("add-checkpoint: no blank line between the proof and the checkpoint")
    lines = head.split("\n")
    if not lines[0].startswith("old "):
        raise InvalidInput("add-checkpoint: the first line must be 'old <size>'")
    old_size = parse_decimal(lines[0][4:], "add-checkpoint old size")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise InvalidInput(f"add-checkpoint: more than {MAX_PROOF_LINES} consistency proof lines")
    proof = [parse_hash(line, f"add-checkpoint proof line {n}") for n, line in enumerate(lines[1:], 1)]
    return old_size, proof, SignedCheckpoint.parse(note, "add-checkpoint checkpoint")


class Witness:
    def __init__(self, path: Path, key: SigningKey, logs: Mapping[str, Sequence[VerifyingKey]] | None = None) -> None:
        self.key = key
        self.logs: dict[str, list[VerifyingKey]] = {origin: list(keys) for origin, keys in (logs or {}).items()}
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS cosigned (origin TEXT PRIMARY KEY, size INTEGER NOT NULL, "
            "root BLOB NOT NULL, note TEXT NOT NULL)"
        )
        # One request at a time: checking the old size and recording the new one must be atomic.
        self._lock = threading.Lock()

    @property
    def public(self) -> VerifyingKey:
        """This witness's verifier key, of cosignature type 0x04."""
        return self.key.cosigner_public

    def follow(self, origin: str, log_key: VerifyingKey) -> bool:
        """Witness a log. The first key seen for an origin is the one that counts (trust on first use): a peer
        cannot take over another log's record by advertising its own key under that name."""
        keys = self.logs.setdefault(origin, [])
        if not keys:
            keys.append(log_key)
        return log_key in keys

    def latest(self, origin: str) -> tuple[int, bytes] | None:
        row = self._db.execute("SELECT size, root FROM cosigned WHERE origin = ?", (origin,)).fetchone()
        return None if row is None else (row[0], row[1])

    def cosigned(self, origin: str) -> SignedCheckpoint | None:
        """The checkpoint this witness last cosigned for a log, as the log submitted it."""
        with self._lock:  # not inside another thread's cosigning transaction on the shared connection
            row = self._db.execute("SELECT note FROM cosigned WHERE origin = ?", (origin,)).fetchone()
        return None if row is None else SignedCheckpoint.parse(row[0], f"checkpoint of {origin} last cosigned")

    def add_checkpoint(self, body: bytes) -> bytes:
        old_size, proof, signed = parse_add_checkpoint(body)
        return b"".join(s.line().encode("utf-8") for s in self.cosign(old_size, proof, signed))

    def cosign(self, old_size: int, proof: Sequence[bytes], signed: SignedCheckpoint) -> list[NoteSignature]:
        checkpoint = signed.checkpoint
        keys = self.logs.get(checkpoint.origin)
        if keys is None:
            raise NotFound(f"witness: log {checkpoint.origin!r} is not one this witness follows")
        try:
            verify_note(signed.note, keys, f"checkpoint of {checkpoint.origin}")
        except VerificationFailed as exc:
            raise PermissionDenied(f"witness: {exc}") from exc
        if old_size > checkpoint.size:
            raise InvalidInput(f"witness: old size {old_size} is larger than the checkpoint size {checkpoint.size}")
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                signatures = self._check_and_record(old_size, proof, signed)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return signatures

    def _check_and_record(self, old_size: int, proof: Sequence[bytes], signed: SignedCheckpoint) -> list[NoteSignature]:
        checkpoint = signed.checkpoint
        latest = self.latest(checkpoint.origin)
        known_size, known_root = latest if latest is not None else (0, merkle.EMPTY_ROOT)
        if old_size != known_size:
            raise StaleOldSize(
                f"witness: log {checkpoint.origin} was last cosigned at size {known_size}, not {old_size}", known_size
            )
        if old_size == checkpoint.size and known_root != checkpoint.root and latest is not None:
            raise Conflict(
                f"witness: log {checkpoint.origin} shows a different root for size {old_size} than the one cosigned"
            )
        if old_size == 0 and proof:
            raise VerificationFailed("witness: a consistency proof from size 0 must be empty")
        if old_size > 0:
            try:
                merkle.verify_consistency(old_size, checkpoint.size, proof, known_root, checkpoint.root)
            except VerificationFailed as exc:
                raise VerificationFailed(
                    f"witness: log {checkpoint.origin} at size {checkpoint.size} is not consistent with the "
                    f"cosigned size {old_size}: {exc}"
                ) from exc
        self._db.execute(
            "INSERT OR REPLACE INTO cosigned (origin, size, root, note) VALUES (?, ?, ?, ?)",
            (checkpoint.origin, checkpoint.size, checkpoint.root, signed.to_text()),
        )
        return [cosign(checkpoint, self.key)]

    def close(self) -> None:
        self._db.close()
