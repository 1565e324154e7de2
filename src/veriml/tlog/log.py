"""An append-only RFC 9162 Merkle log on SQLite, with group commit and signed C2SP checkpoints.

One writer thread owns the write connection. Appends queue up and are sequenced in batches: one transaction
and one fsync for everything waiting, so durability does not cost an fsync per entry under load; a caller's
index is returned only after its batch is on disk. Integration (hashing new entries into the tree) and
checkpoint signing are separate steps on the same thread, run on a cadence, never per entry (as in Tessera).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from veriml.errors import Conflict, InvalidInput, NotFound, Unavailable, VerificationFailed, VerimlError
from veriml.identity import SigningKey, VerifyingKey
from veriml.tlog import merkle
from veriml.tlog.checkpoint import Checkpoint, SignedCheckpoint, verify_cosignature
from veriml.tlog.merkle import HASH_SIZE
from veriml.tlog.note import NoteSignature, parse_note, sign_note, verify_note
from veriml.tlog.proof_text import TlogProof
from veriml.tlog.store import SCHEMA, TILE_BYTES, TILE_HEIGHT, Reader, connect, hash_id, tile_slot
from veriml.tlog.witness import StaleOldSize, add_checkpoint_body

MAX_ENTRY_BYTES = 0xFFFF  # C2SP tlog-tiles entry bundles prefix each entry with a uint16 length
INTEGRATE_CHUNK = 1 << 16
_STOP = object()
events = logging.getLogger("veriml.tlog")


def _resolve(future: Future[Any], value: Any) -> None:
    if not future.done():
        with contextlib.suppress(InvalidStateError):
            future.set_result(value)


def _fail(future: Future[Any], error: BaseException) -> None:
    if not future.done():
        with contextlib.suppress(InvalidStateError):
            future.set_exception(error)


WitnessSubmit = Callable[[bytes], bytes]  # an add-checkpoint request body -> the response body


@dataclass(frozen=True, slots=True)
class _Append:
    rows: list[tuple[bytes, bytes]]  # (entry, extra), sequenced together
    future: Future[list[int]]


@dataclass(frozen=True, slots=True)
class _Call:
    fn: Callable[[], Any]
    future: Future[Any]


class Log:
    """A node's transparency log. The origin is the signing key's name, as C2SP tlog-checkpoint recommends."""

    def __init__(self, path: Path, key: SigningKey, max_batch: int = 1024) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.key = key
        self.origin = key.name
        self.max_batch = max_batch
        self._db = connect(self.path)
        self._db.executescript(SCHEMA)
        stored_origin = self._db.execute("SELECT value FROM state WHERE name = 'origin'").fetchone()
        if stored_origin is None:
            self._db.execute("INSERT INTO state VALUES ('origin', ?)", (self.origin,))
        elif stored_origin[0] != self.origin:
            raise Conflict(f"log {self.path}: belongs to origin {stored_origin[0]!r}, not {self.origin!r}")
        self.reader = Reader(self.path)
        self._next_index = self.reader.sequenced_size()
        self._integrated = int(self.reader.state("integrated_size", 0))  # type: ignore[arg-type]
        self._frontier = self._load_frontier(self._integrated)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._witnessed: dict[str, int] = {}  # witness key id -> the size it last cosigned, as far as we know
        self._closed = False
        self._writer = threading.Thread(target=self._write_loop, name=f"tlog-writer {self.origin}", daemon=True)
        self._writer.start()

    # ---- writes: all on the writer thread -------------------------------------------------------------

    def submit_batch(self, entries: Sequence[tuple[bytes, bytes]]) -> Future[list[int]]:
        """Queue (entry, extra) pairs; the future gives their consecutive indices once they are durable.
        Concurrent submissions share one transaction and one fsync (group commit)."""
        rows = list(entries)
        for leaf, extra in rows:
            if type(leaf) is not bytes or not 0 < len(leaf) <= MAX_ENTRY_BYTES or type(extra) is not bytes:
                raise InvalidInput(f"log entry: expected 1 to {MAX_ENTRY_BYTES} bytes, and bytes beside it")
        if self._closed:
            raise Unavailable(f"log {self.origin}: closed")
        future: Future[list[int]] = Future()
        self._queue.put(_Append(rows, future))
        return future

    def append(self, leaf: bytes, extra: bytes = b"") -> int:
        """Append an entry and return its index, after it is on disk."""
        return self.submit_batch([(leaf, extra)]).result()[0]

    def append_batch(self, entries: Sequence[tuple[bytes, bytes]]) -> list[int]:
        return self.submit_batch(entries).result()

    def _run(self, fn: Callable[[], Any]) -> Any:
        if self._closed:
            raise Unavailable(f"log {self.origin}: closed")
        future: Future[Any] = Future()
        self._queue.put(_Call(fn, future))
        return future.result()

    def _write_loop(self) -> None:
        while True:
            try:
                if self._write_round():
                    return
            except Exception:  # the writer must outlive any one bad round, or every append would hang
                events.exception("log %s: writer round failed", self.origin)

    def _write_round(self) -> bool:
        """Take what is queued and do it; True once asked to stop."""
        item = self._queue.get()
        batch = [item]
        while len(batch) < self.max_batch:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        appends = [i for i in batch if isinstance(i, _Append)]
        while len(appends) == len(batch) and sum(len(a.rows) for a in appends) < self.max_batch:
            try:  # keep gathering while only appends arrive and the batch has room
                more = self._queue.get_nowait()
            except queue.Empty:
                break
            batch.append(more)
            if isinstance(more, _Append):
                appends.append(more)
        if appends:
            self._sequence(appends)
        for call in batch:
            if isinstance(call, _Call):
                try:
                    _resolve(call.future, call.fn())
                except BaseException as exc:
                    _fail(call.future, exc)
        if any(i is _STOP for i in batch):
            self._db.close()
            while not self._queue.empty():  # an append that raced close() must not wait forever
                leftover = self._queue.get_nowait()
                if isinstance(leftover, _Append | _Call):
                    _fail(leftover.future, Unavailable(f"log {self.origin}: closed"))
            return True
        return False

    @contextlib.contextmanager
    def _transaction(self, before: str | None = None, after: str | None = None) -> Iterator[None]:
        """One write transaction on the writer thread's connection, rolled back on any failure. `before` and
        `after` set a pragma for this transaction only (they cannot change inside one) and put it back."""
        if before:
            self._db.execute(before)
        try:
            self._db.execute("BEGIN IMMEDIATE")
            yield
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        finally:
            if after:
                self._db.execute(after)

    def _sequence(self, appends: list[_Append]) -> None:
        start = self._next_index
        rows = [(start + n, *row) for n, row in enumerate(row for a in appends for row in a.rows)]
        try:
            with self._transaction():  # synchronous=FULL: on disk when the commit returns
                self._db.executemany("INSERT INTO entries (idx, leaf, extra) VALUES (?, ?, ?)", rows)
        except Exception as exc:
            for append in appends:
                _fail(append.future, Unavailable(f"log {self.origin}: could not store entry: {exc}"))
            return
        self._next_index = start + len(rows)
        position = start
        for append in appends:
            # A caller that stopped waiting (a cancelled request) still has its entry logged.
            _resolve(append.future, list(range(position, position + len(append.rows))))
            position += len(append.rows)

    def replace_extras(self, rows: Sequence[tuple[int, bytes]]) -> None:
        """Rewrite what is kept beside entries (a node deleting request data after its retention window). Leaves,
        tiles and checkpoints are untouched, so every proof verifies as before; freed bytes are zeroed."""
        self._run(lambda: self._replace_extras(list(rows)))

    def _replace_extras(self, rows: list[tuple[int, bytes]]) -> None:
        with self._transaction("PRAGMA secure_delete=ON", "PRAGMA secure_delete=OFF"):
            self._db.executemany("UPDATE entries SET extra = ? WHERE idx = ?", [(extra, i) for i, extra in rows])
        # The old pages may still sit in the write-ahead log: fold it into the file and empty it.
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def integrate(self) -> int:
        """Hash every sequenced entry into the tree; return the integrated size."""
        return self._run(self._integrate)

    def _integrate(self) -> int:
        while self._integrated < self._next_index:
            rows = self._db.execute(
                "SELECT idx, leaf FROM entries WHERE idx >= ? ORDER BY idx LIMIT ?", (self._integrated, INTEGRATE_CHUNK)
            ).fetchall()
            tiles: dict[int, bytearray] = {}
            upper: list[tuple[int, bytes]] = []
            frontier = list(self._frontier)
            size = self._integrated
            sha256 = hashlib.sha256
            for index, leaf in rows:
                if index != size:
                    raise VerificationFailed(f"log storage: entry {size} is missing (found {index} next)")
                tile_index = index >> TILE_HEIGHT
                tile = tiles.get(tile_index)
                if tile is None:
                    # Only the right-edge tile can hold hashes already; read it on this connection, not through
                    # the readers' cache.
                    stored = None
                    if tile_index << TILE_HEIGHT < self._integrated:
                        row = self._db.execute("SELECT hashes FROM tiles WHERE idx = ?", (tile_index,)).fetchone()
                        stored = None if row is None else row[0]
                    tile = tiles[tile_index] = bytearray(stored or bytes(TILE_BYTES))
                digest, level = sha256(b"\x00" + leaf).digest(), 0
                while True:
                    if level < TILE_HEIGHT:
                        slot = tile_slot((level, index >> level))[1] * HASH_SIZE
                        tile[slot : slot + HASH_SIZE] = digest
                    else:
                        upper.append((hash_id((level, index >> level)), digest))
                    if not frontier or frontier[-1][0] != level:
                        break
                    digest = sha256(b"\x01" + frontier.pop()[1] + digest).digest()
                    level += 1
                frontier.append((level, digest))
                size += 1
            blobs = {index: bytes(tile) for index, tile in tiles.items()}
            # Integration can be redone from the entries, so its commit need not wait for the disk.
            with self._transaction("PRAGMA synchronous=NORMAL", "PRAGMA synchronous=FULL"):
                self._db.executemany("INSERT OR REPLACE INTO tiles (idx, hashes) VALUES (?, ?)", blobs.items())
                self._db.executemany("INSERT INTO hashes (id, hash) VALUES (?, ?)", upper)
                self._db.execute("INSERT OR REPLACE INTO state VALUES ('integrated_size', ?)", (size,))
            self.reader.remember(upper, blobs)
            self._frontier, self._integrated = frontier, size
        return self._integrated

    def _load_frontier(self, size: int) -> list[tuple[int, bytes]]:
        keys = merkle._complete_subtrees(0, size)
        return list(zip([level for level, _ in keys], self.reader.hashes(keys), strict=True))

    def sign_checkpoint(self) -> SignedCheckpoint:
        """Integrate, then sign and store a checkpoint if the tree grew since the last one; return the latest.

        Refuses (VerificationFailed) to sign a tree that is not consistent with the last signed checkpoint."""
        return self._run(self._sign_checkpoint)

    def _sign_checkpoint(self) -> SignedCheckpoint:
        size = self._integrate()
        last = self.latest_checkpoint()
        if last is not None and last.checkpoint.size == size:
            return last
        root = merkle.root_hash(size, self.reader.hashes)
        if last is not None:
            self._check_consistent(last.checkpoint, size, root)
        checkpoint = Checkpoint(self.origin, size, root)
        signed = SignedCheckpoint(checkpoint, sign_note(checkpoint.text(), self.key))
        with self._transaction():
            self._db.execute(
                "INSERT INTO checkpoints (size, root, note) VALUES (?, ?, ?)", (size, root, signed.to_text())
            )
        return signed

    def _check_consistent(self, last: Checkpoint, size: int, root: bytes) -> None:
        try:
            proof = merkle.consistency_proof(last.size, size, self.reader.hashes)
            merkle.verify_consistency(last.size, size, proof, last.root, root)
        except VerificationFailed as exc:
            raise VerificationFailed(
                f"log {self.origin}: refusing to sign size {size}: the stored tree is not consistent with the "
                f"checkpoint signed at size {last.size} ({exc}); the log storage was changed"
            ) from exc

    def add_cosignatures(self, size: int, signatures: Sequence[NoteSignature]) -> SignedCheckpoint:
        """Attach witness cosignatures (already verified by the caller) to the stored checkpoint of `size`."""

        def store() -> SignedCheckpoint:
            signed = self.checkpoint_at(size).with_cosignatures(signatures)
            self._db.execute("UPDATE checkpoints SET note = ? WHERE size = ?", (signed.to_text(), size))
            return signed

        return self._run(store)

    def collect_cosignatures(
        self, signed: SignedCheckpoint, witnesses: Sequence[tuple[VerifyingKey, WitnessSubmit]]
    ) -> tuple[SignedCheckpoint, dict[str, str]]:
        """Ask each witness to cosign (C2SP tlog-witness add-checkpoint), store the cosignatures that verify,
        and return the cosigned checkpoint with the reason for each witness that did not cosign."""
        checkpoint = signed.checkpoint
        collected: list[NoteSignature] = []
        refusals: dict[str, str] = {}
        for witness, submit in witnesses:
            old = self._witnessed.get(witness.key_id, 0)
            try:
                try:
                    response = submit(self._add_checkpoint_body(old, signed))
                except StaleOldSize as stale:  # the witness says which size it last cosigned: prove from there
                    self._witnessed[witness.key_id] = stale.size
                    response = submit(self._add_checkpoint_body(stale.size, signed))
                try:
                    text = response.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise VerificationFailed(
                        f"witness {witness.key_id} answered with bytes that are not UTF-8"
                    ) from exc
                lines = parse_note(signed.to_text() + text, "witness response").signatures
                mine = [line for line in lines if line.matches(witness)]
                if not mine:
                    raise VerificationFailed(f"witness {witness.key_id} answered without its cosignature")
                verify_cosignature(checkpoint, mine[0], witness)
                collected.append(mine[0])
                self._witnessed[witness.key_id] = checkpoint.size
            except VerimlError as exc:
                refusals[witness.key_id] = str(exc)
        if collected:
            signed = self.add_cosignatures(checkpoint.size, collected)
        return signed, refusals

    def _add_checkpoint_body(self, old: int, signed: SignedCheckpoint) -> bytes:
        old = min(old, signed.checkpoint.size)
        return add_checkpoint_body(old, self.consistency_proof(old, signed.checkpoint.size), signed)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(_STOP)
            self._writer.join()
            self.reader.close()

    def __enter__(self) -> Log:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- reads: any thread ----------------------------------------------------------------------------

    @property
    def sequenced_size(self) -> int:
        return self._next_index

    @property
    def integrated_size(self) -> int:
        return self._integrated  # set by the writer thread after each integration commits

    def latest_checkpoint(self) -> SignedCheckpoint | None:
        row = self.reader.db.execute("SELECT note FROM checkpoints ORDER BY size DESC LIMIT 1").fetchone()
        return None if row is None else SignedCheckpoint.parse(row[0], f"log {self.origin} checkpoint")

    def checkpoint_at(self, size: int) -> SignedCheckpoint:
        row = self.reader.db.execute("SELECT note FROM checkpoints WHERE size = ?", (size,)).fetchone()
        if row is None:
            raise NotFound(f"log {self.origin}: no checkpoint was signed at size {size}")
        return SignedCheckpoint.parse(row[0], f"log {self.origin} checkpoint")

    def checkpoints(self) -> list[SignedCheckpoint]:
        rows = self.reader.db.execute("SELECT note FROM checkpoints ORDER BY size").fetchall()
        return [SignedCheckpoint.parse(row[0], f"log {self.origin} checkpoint") for row in rows]

    def entry(self, index: int) -> tuple[bytes, bytes]:
        """The entry at `index` and what is kept beside it."""
        return self.reader.entry(index)

    def _covered(self, size: int, what: str) -> None:
        integrated = self.integrated_size
        if size > integrated:
            raise NotFound(f"{what}: the log has integrated only {integrated} entries, not {size}")

    def root(self, size: int) -> bytes:
        self._covered(size, f"root of size {size}")
        return merkle.root_hash(size, self.reader.hashes)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        self._covered(size, f"inclusion proof in size {size}")
        return merkle.inclusion_proof(index, size, self.reader.hashes)

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        self._covered(new, f"consistency proof to size {new}")
        return merkle.consistency_proof(old, new, self.reader.hashes)

    def prove(self, index: int, checkpoint: SignedCheckpoint | None = None) -> TlogProof:
        """A C2SP tlog-proof for entry `index` under `checkpoint` (default: the latest signed one)."""
        checkpoint = checkpoint or self.latest_checkpoint()
        if checkpoint is None or index >= checkpoint.checkpoint.size:
            covered = 0 if checkpoint is None else checkpoint.checkpoint.size
            raise NotFound(f"log entry {index}: no checkpoint covers it yet (latest covers {covered} entries)")
        leaf, _ = self.entry(index)
        proof = self.inclusion_proof(index, checkpoint.checkpoint.size)
        merkle.verify_inclusion(
            index, checkpoint.checkpoint.size, merkle.leaf_hash(leaf), proof, checkpoint.checkpoint.root
        )
        return TlogProof(index, tuple(proof), checkpoint)

    def _compare_stored(self, pending: list[tuple[merkle.SubtreeKey, bytes]]) -> None:
        stored = self.reader.hashes([key for key, _ in pending])
        for (key, digest), found in zip(pending, stored, strict=True):
            if digest != found:
                what = f"entry {key[1]}" if key[0] == 0 else f"subtree {key} (leaves {key[1] << key[0]}..)"
                raise VerificationFailed(f"log {self.origin}: {what} does not match its integrated hash")
        pending.clear()

    def verify_integrity(self) -> int:
        """Recompute the whole tree from the stored entries and check it against every signed checkpoint and
        the stored hashes. Returns the number of entries checked; raises VerificationFailed naming the first
        thing that does not match (an entry changed, deleted or reordered)."""
        checkpoints = {c.checkpoint.size: c for c in self.checkpoints()}
        for signed in checkpoints.values():
            verify_note(signed.note, [self.key.public], f"log {self.origin} checkpoint {signed.checkpoint.size}")
        if 0 in checkpoints and checkpoints[0].checkpoint.root != merkle.EMPTY_ROOT:
            raise VerificationFailed(f"log {self.origin}: the checkpoint of size 0 does not have the empty root")
        frontier: list[tuple[int, bytes]] = []
        integrated = self.integrated_size
        expected = 0
        pending: list[tuple[merkle.SubtreeKey, bytes]] = []  # recomputed hashes to compare with stored ones
        cursor = self.reader.db.execute("SELECT idx, leaf FROM entries ORDER BY idx")
        for index, leaf in cursor:
            if index != expected:
                raise VerificationFailed(f"log {self.origin}: entry {expected} is missing (next stored is {index})")
            digest, level = merkle.leaf_hash(leaf), 0
            if index < integrated:
                pending.append(((0, index), digest))
            while frontier and frontier[-1][0] == level:
                digest = merkle.node_hash(frontier.pop()[1], digest)
                level += 1
                if index < integrated:
                    pending.append(((level, index >> level), digest))
            frontier.append((level, digest))
            expected += 1
            if len(pending) >= 4096 or expected in checkpoints:
                self._compare_stored(pending)  # first, so a changed entry is named rather than a root
            if (
                expected in checkpoints
                and merkle._fold([d for _, d in frontier]) != checkpoints[expected].checkpoint.root
            ):
                raise VerificationFailed(
                    f"log {self.origin}: the entries no longer hash to the root signed at size {expected}"
                )
        self._compare_stored(pending)
        beyond = [size for size in checkpoints if size > expected]
        if beyond:
            raise VerificationFailed(f"log {self.origin}: a checkpoint was signed at size {beyond[0]}, "
                                     f"but only {expected} entries are stored")  # fmt: skip
        return expected
