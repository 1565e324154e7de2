"""An append-only RFC 9162 Merkle log on SQLite, with group commit and signed C2SP checkpoints.

Appends are sequenced in batches (group commit): one transaction for everything pending, in which a C2SP checkpoint
over the new size is also signed and stored, then one fsync of the write-ahead log for every batch committed while
the previous fsync ran. So one signature serves a batch and one fsync serves one or more batches, and a caller's
index is returned only once its entry is on disk under a signed checkpoint: an inclusion proof can go out with it.

Who commits: the writer thread, woken by each submission; or, for an event loop that wants no thread hop per
request, the loop itself (`submit_on_loop`, then `commit_on_loop()` once per loop turn, which waits while a batch's
fsync runs so that the next batch takes in all that arrived meanwhile). The fsync runs
on its own syncer thread, which holds the GIL only to start and to hand the results back: a writer thread doing a
batch's SQL statements would need the GIL back after each one, and behind a busy event loop each takes up to a
switch interval (measured: 2-3 ms per append under load, 0.5 ms idle).

The batch is hashed into the tree in memory; the tree's hashes are written on the cadence (they can always be
recomputed from the entries, and are after a crash), so a batch's commit carries only its entries and the
checkpoint. That checkpoint is kept as the log's latest once it is durable; on a cadence the latest is *published*
(stored among the checkpoints witnesses cosign and chains anchor), so witnessing grows with time, not with traffic.

Two processes may write one log (a node and a CLI on one home): each write transaction first checks that the
stored tree is the one this process last wrote, and takes in the other writer's entries if not.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
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
from veriml.tlog.proof_text import TlogProof, proof_text
from veriml.tlog.shared_proofs import CheckpointProver
from veriml.tlog.store import SCHEMA, TILE_BYTES, TILE_HEIGHT, Reader, connect, hash_id, tile_slot
from veriml.tlog.witness import StaleOldSize, add_checkpoint_body

UNFLUSHED_TILES = 16  # tiles of tree hashes kept only in memory before they are stored without a cadence
MAX_ENTRY_BYTES = 0xFFFF  # C2SP tlog-tiles entry bundles prefix each entry with a uint16 length
INTEGRATE_CHUNK = 1 << 16
_STOP = object()
_WAKE = object()  # appends are pending
events = logging.getLogger("veriml.tlog")


AnyFuture = Future[Any] | asyncio.Future[Any]


def _settle(future: AnyFuture, value: Any, ok: bool) -> None:
    """Set a result or an exception, unless the waiter gave up. An event loop's future is set on its loop."""
    if isinstance(future, asyncio.Future):
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody is waiting
            future.get_loop().call_soon_threadsafe(_settle_here, future, value, ok)
    else:
        _settle_here(future, value, ok)


def _settle_here(future: AnyFuture, value: Any, ok: bool) -> None:
    if not future.done():
        with contextlib.suppress(InvalidStateError, asyncio.InvalidStateError):
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)


def _settle_all_here(settled: list[tuple[AnyFuture, Any, bool]]) -> None:
    for future, value, ok in settled:
        _settle_here(future, value, ok)


def _resolve(future: AnyFuture, value: Any) -> None:
    _settle(future, value, True)


def _fail(future: AnyFuture, error: BaseException) -> None:
    _settle(future, error, False)


def _take_all(waiting: queue.SimpleQueue[Any]) -> list[Any]:
    """Wait for one item, then take whatever else is queued: a round of work for a writer or syncer thread."""
    items = [waiting.get()]
    while True:
        try:
            items.append(waiting.get_nowait())
        except queue.Empty:
            return items


WitnessSubmit = Callable[[bytes], bytes]  # an add-checkpoint request body -> the response body


@dataclass(frozen=True, slots=True)
class _Append:
    rows: list[tuple[bytes, bytes]]  # (entry, extra), sequenced together
    future: AnyFuture  # an event loop's future is resolved on its loop, with the rest of its batch


@dataclass(frozen=True, slots=True)
class _Integrated:
    """A batch hashed into the tree, not yet committed: what the commit writes and the writer then keeps."""

    tiles: dict[int, bytes]
    upper: list[tuple[int, bytes]]
    frontier: list[tuple[int, bytes]]
    size: int


class _StoreChanged(Exception):
    """Another process wrote the log since this one last did."""


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
        self._db.execute("PRAGMA synchronous=NORMAL")  # durability comes from _sync_wal, off the committing thread
        self._db.executescript(SCHEMA)
        stored_origin = self._db.execute("SELECT value FROM state WHERE name = 'origin'").fetchone()
        if stored_origin is None:
            self._db.execute("INSERT INTO state VALUES ('origin', ?)", (self.origin,))
        elif stored_origin[0] != self.origin:
            raise Conflict(f"log {self.path}: belongs to origin {stored_origin[0]!r}, not {self.origin!r}")
        self.reader = Reader(self.path)
        self._next_index = self.reader.sequenced_size()
        self._integrated = int(self.reader.state("integrated_size", 0))  # type: ignore[arg-type]
        self._flushed = self._integrated  # the integrated size whose hashes are stored
        self._unflushed_tiles: dict[int, bytes] = {}  # tiles hashed since, newest version (also in the reader)
        self._unflushed_upper: list[tuple[int, bytes]] = []  # hashes of levels >= 8 since
        self._frontier = self._load_frontier(self._integrated)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()  # for the writer thread: wake-ups, calls, stop
        self._pending: list[_Append] = []  # appends not yet committed
        self._pending_lock = threading.Lock()
        self._lock = threading.RLock()  # the write connection and the tree state: one committer at a time
        self._synced: queue.SimpleQueue[Any] = queue.SimpleQueue()  # for the syncer thread: committed batches
        self._unsynced = 0  # batches handed to the syncer and not yet synced (under _pending_lock)
        self._loops_waiting: set[asyncio.AbstractEventLoop] = set()  # loops to commit on once they are
        self._wal = Path(f"{self.path}-wal")
        self._wal_fd: int | None = None
        self._wal_lock = threading.Lock()
        self._witnessed: dict[str, int] = {}  # witness key id -> the size it last cosigned, as far as we know
        self._latest: SignedCheckpoint | None = None  # the newest durable checkpoint this process signed or read
        self._prover: CheckpointProver | None = None  # proofs under the newest checkpoint asked about
        self._refusal: str | None = None  # why the stored tree may not be signed (it changed under a checkpoint)
        self._closed = False
        self.batches_committed = 0  # group commits by this process: each one transaction and one signed checkpoint
        self.syncs = 0  # fsyncs of the write-ahead log for batches: each serves every batch committed before it
        self._writer = threading.Thread(target=self._write_loop, name=f"tlog-writer {self.origin}", daemon=True)
        self._syncer = threading.Thread(target=self._sync_loop, name=f"tlog-syncer {self.origin}", daemon=True)
        self._writer.start()
        self._syncer.start()
        self._run(self._catch_up)

    # ---- writes: under the write lock, on the writer thread or a committing caller's ------------------

    def submit_batch(self, entries: Sequence[tuple[bytes, bytes]]) -> Future[list[int]]:
        """Queue (entry, extra) pairs; the future gives their consecutive indices once they are durable.
        Concurrent submissions share one transaction and one fsync (group commit); the writer thread commits."""
        future: Future[list[int]] = Future()
        self._add_pending(entries, future)
        self._queue.put(_WAKE)
        return future

    def submit_on_loop(self, entries: Sequence[tuple[bytes, bytes]]) -> asyncio.Future[list[int]]:
        """`submit_batch` for the running event loop's thread: the future is the loop's own (no thread lock per
        request), the whole batch is resolved with one wake-up of the loop, and the caller commits
        (`commit_on_loop`, once a loop turn), not the writer thread."""
        future: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self._add_pending(entries, future)
        return future

    def _add_pending(self, entries: Sequence[tuple[bytes, bytes]], future: AnyFuture) -> None:
        rows = list(entries)
        for leaf, extra in rows:
            if type(leaf) is not bytes or not 0 < len(leaf) <= MAX_ENTRY_BYTES or type(extra) is not bytes:
                raise InvalidInput(f"log entry: expected 1 to {MAX_ENTRY_BYTES} bytes, and bytes beside it")
        if self._closed:
            raise Unavailable(f"log {self.origin}: closed")
        with self._pending_lock:
            self._pending.append(_Append(rows, future))

    def commit_pending(self, blocking: bool = True) -> bool:
        """Commit every pending append in this thread, one transaction (no fsync here: the syncer thread makes the
        batch durable, then resolves its futures). Without `blocking`, False when another thread holds the log:
        the caller should then `wake_writer()`."""
        if not self._lock.acquire(blocking=blocking):
            return False
        try:
            self._commit_pending()
        finally:
            self._lock.release()
        return True

    def wake_writer(self) -> None:
        """Have the writer thread commit what is pending."""
        self._queue.put(_WAKE)

    def commit_on_loop(self) -> None:
        """For an event loop, once a turn: commit what is pending now, unless a batch's fsync is still running; then
        right after it (group commit: while the disk is busy the next batch grows, so a loaded node pays one
        transaction, one signature and one fsync for all that arrived meanwhile, not one per loop turn)."""
        with self._pending_lock:
            if self._unsynced:
                self._loops_waiting.add(asyncio.get_running_loop())
                return
        if not self.commit_pending(blocking=False):  # the writer thread holds the log (a cadence step): it commits
            self.wake_writer()

    def append(self, leaf: bytes, extra: bytes = b"") -> int:
        """Append an entry and return its index, after it is on disk."""
        return self.submit_batch([(leaf, extra)]).result()[0]

    def append_batch(self, entries: Sequence[tuple[bytes, bytes]]) -> list[int]:
        return self.submit_batch(entries).result()

    def _run(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` on the writer thread under the write lock, then make what it wrote durable."""
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
        batch = _take_all(self._queue)
        calls = [item for item in batch if isinstance(item, _Call)]
        stop = any(item is _STOP for item in batch)
        with self._lock:
            self._commit_pending()
            results: list[tuple[_Call, bool, Any]] = []
            for call in calls:
                try:
                    results.append((call, True, call.fn()))
                except BaseException as exc:
                    results.append((call, False, exc))
            if calls:
                try:
                    self._sync_wal()  # what the calls wrote is durable before their callers go on
                except OSError as exc:
                    results = [(call, False, Unavailable(f"log {self.origin}: could not sync: {exc}"))
                               for call, _, _ in results]  # fmt: skip
        for call, ok, value in results:
            if ok:
                _resolve(call.future, value)
            else:
                _fail(call.future, value)
        if stop:
            with self._lock:
                try:
                    self._flush()
                except Exception:  # the hashes are recomputed from the entries at the next open
                    events.exception("log %s: could not store the tree hashes at close", self.origin)
            self._synced.put(_STOP)
            self._syncer.join()
            self._db.close()
            if self._wal_fd is not None:
                os.close(self._wal_fd)
            with self._pending_lock:
                leftovers, self._pending = self._pending, []
            while not self._queue.empty():  # a call that raced close() must not wait forever
                leftover = self._queue.get_nowait()
                if isinstance(leftover, _Call):
                    _fail(leftover.future, Unavailable(f"log {self.origin}: closed"))
            for append in leftovers:
                _fail(append.future, Unavailable(f"log {self.origin}: closed"))
            return True
        return False

    def _sync_loop(self) -> None:
        """Make committed batches durable, one fsync for all that are waiting, then hand their indices back."""
        while True:
            jobs = _take_all(self._synced)
            batches = [job for job in jobs if job is not _STOP]
            on_loops: dict[asyncio.AbstractEventLoop, list[tuple[AnyFuture, Any, bool]]] = {}
            if batches:
                try:
                    self._sync_wal()
                except OSError as exc:
                    for appends, _, _ in batches:
                        for append, _ in appends:
                            _fail(append.future, Unavailable(f"log {self.origin}: could not sync: {exc}"))
                else:
                    self.syncs += 1
                    signed = [checkpoint for _, checkpoint, _ in batches if checkpoint is not None]
                    latest = self._latest
                    # Durable now: it may be served. Never step back (the cadence may have signed past it), nor
                    # replace one of the same size (it may carry cosignatures by now).
                    if signed and (latest is None or signed[-1].checkpoint.size > latest.checkpoint.size):
                        self._latest = signed[-1]
                    for appends, _, _ in batches:
                        for append, indices in appends:
                            # A caller that stopped waiting (a cancelled request) still has its entry logged.
                            if isinstance(append.future, asyncio.Future):
                                on_loops.setdefault(append.future.get_loop(), []).append((append.future, indices, True))
                            else:
                                _resolve(append.future, indices)
                with self._pending_lock:
                    self._unsynced -= len(batches)
                    waiting, self._loops_waiting = self._loops_waiting, set()
                # One wake-up per loop: its answers are settled, then (after every round, even if more batches came
                # meanwhile: nobody starves) what it has pending is committed.
                for loop in on_loops.keys() | waiting:
                    with contextlib.suppress(RuntimeError):  # a loop closed meanwhile: nobody is waiting
                        loop.call_soon_threadsafe(self._after_sync, on_loops.get(loop, ()), loop in waiting)
            if len(batches) < len(jobs):
                return

    def _after_sync(self, settled: Sequence[tuple[AnyFuture, Any, bool]], commit: bool) -> None:
        """On a loop, after a sync round: settle its answers, then commit what it has pending if it was waiting."""
        _settle_all_here(settled)
        if commit:
            self.commit_on_loop()

    def _sync_wal(self) -> None:
        """Make every transaction committed so far durable: commits run at synchronous=NORMAL, which in WAL mode
        keeps the database consistent but leaves the last commits in the write-ahead log unsynced. The log's file
        stays open: SQLite removes it only when the last connection closes, and this log holds its connections
        until it is closed."""
        with self._wal_lock:
            if self._wal_fd is None:
                try:
                    self._wal_fd = os.open(self._wal, os.O_RDONLY)
                except FileNotFoundError:  # no write-ahead log yet: all is in the database file, synced when written
                    return
            os.fdatasync(self._wal_fd)

    @contextlib.contextmanager
    def _transaction(self, before: str | None = None, after: str | None = None) -> Iterator[None]:
        """One write transaction on the write connection, rolled back on any failure. `before` and `after` set a
        pragma for this transaction only (they cannot change inside one) and put it back."""
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

    def _commit_pending(self) -> None:
        """Under the write lock: commit what is pending in batches of at most max_batch rows, and pass them to the
        syncer thread."""
        with self._pending_lock:
            pending, self._pending = self._pending, []
        while pending:
            appends, size = [], 0
            while pending and (not appends or size + len(pending[0].rows) <= self.max_batch):
                appends.append(pending.pop(0))
                size += len(appends[-1].rows)
            self._sequence(appends)

    def _sequence(self, appends: list[_Append]) -> None:
        rows = [row for append in appends for row in append.rows]
        for _attempt in range(3):
            try:
                committed = self._commit_batch(rows)
                break
            except _StoreChanged:
                self._catch_up()  # another process appended: take its entries in, then sequence after them
            except Exception as exc:
                for append in appends:
                    _fail(append.future, Unavailable(f"log {self.origin}: could not store entry: {exc}"))
                return
        else:
            for append in appends:
                _fail(append.future, Unavailable(f"log {self.origin}: another process keeps writing this log"))
            return
        start, integrated, signed = committed
        self.batches_committed += 1
        self._unflushed_tiles.update(integrated.tiles)
        self._unflushed_upper.extend(integrated.upper)
        self.reader.remember(integrated.upper, integrated.tiles, unflushed=True)
        self._frontier, self._integrated, self._next_index = integrated.frontier, integrated.size, integrated.size
        if len(self._unflushed_tiles) > UNFLUSHED_TILES:  # a log without a cadence keeps its memory bounded
            self._flush()
        position, indexed = start, []
        for append in appends:
            indexed.append((append, list(range(position, position + len(append.rows)))))
            position += len(append.rows)
        with self._pending_lock:
            self._unsynced += 1
        self._synced.put((indexed, signed, integrated.size))

    def _commit_batch(self, rows: list[tuple[bytes, bytes]]) -> tuple[int, _Integrated, SignedCheckpoint | None]:
        """Store and (unless the stored tree was found changed) sign, in one transaction."""
        with self._transaction():
            self._check_unchanged()
            start = self._next_index
            self._db.executemany(
                "INSERT INTO entries (idx, leaf, extra) VALUES (?, ?, ?)",
                [(start + n, leaf, extra) for n, (leaf, extra) in enumerate(rows)],
            )
            integrated = self._hash_in(start, [leaf for leaf, _ in rows], self._frontier)
            signed = None
            if self._refusal is None:
                checkpoint = Checkpoint(self.origin, integrated.size, merkle._fold([d for _, d in integrated.frontier]))
                signed = SignedCheckpoint(checkpoint, sign_note(checkpoint.text(), self.key))
                self._db.execute("INSERT OR REPLACE INTO state VALUES ('checkpoint', ?)", (signed.to_text(),))
        return start, integrated, signed

    def _check_unchanged(self) -> None:
        """Inside a write transaction: raise _StoreChanged if the stored log is not the one this process last
        wrote (another process appended)."""
        stored_size, integrated = self._db.execute(
            "SELECT (SELECT MAX(idx) FROM entries), (SELECT value FROM state WHERE name = 'integrated_size')"
        ).fetchone()
        if (0 if stored_size is None else stored_size + 1) != self._next_index or (integrated or 0) != self._flushed:
            raise _StoreChanged

    def _flush(self) -> None:
        """Store the tree hashes computed since the last flush. Need not be durable: they can be recomputed from
        the entries."""
        if not self._store_unflushed():
            self._catch_up()  # another process stored more: take its tree in

    def _store_unflushed(self) -> bool:
        """Store what `_flush` stores; False, storing nothing, if another process stored the tree past where this one
        last did (its hashes then cover every entry this one had hashed: they were committed before it read them)."""
        if self._flushed == self._integrated and not self._unflushed_upper:
            return True
        with self._transaction():
            row = self._db.execute("SELECT value FROM state WHERE name = 'integrated_size'").fetchone()
            if (0 if row is None else row[0]) != self._flushed:
                return False
            self._store_integration(self._unflushed_tiles, self._unflushed_upper, self._integrated)
        self.reader.flushed(list(self._unflushed_tiles))
        self._unflushed_tiles, self._unflushed_upper, self._flushed = {}, [], self._integrated
        return True

    def _catch_up(self) -> None:
        """Take in what is stored (entries another process appended, an old log's unintegrated entries), and make
        sure a signed checkpoint covers it all, unless the stored tree is not consistent with the last one signed."""
        # First store the hashes only this process holds, so that proofs for entries already answered keep working
        # while the reader forgets what it cached.
        self._store_unflushed()
        self.reader.reload()
        self._next_index = self.reader.sequenced_size()
        self._integrated = int(self.reader.state("integrated_size", 0))  # type: ignore[arg-type]
        self._flushed, self._unflushed_tiles, self._unflushed_upper = self._integrated, {}, []
        self._frontier = self._load_frontier(self._integrated)
        self._integrate()
        latest = self.latest_checkpoint()
        if latest is not None and latest.checkpoint.size > self._integrated:
            self._refusal = (f"log {self.origin}: a checkpoint was signed at size {latest.checkpoint.size}, but only "
                             f"{self._integrated} entries are stored")  # fmt: skip
            events.error("%s", self._refusal)
            return
        root = merkle._fold([d for _, d in self._frontier]) if self._frontier else merkle.EMPTY_ROOT
        if latest is not None:
            try:
                self._check_consistent(latest.checkpoint, self._integrated, root)
            except VerificationFailed as exc:
                self._refusal = str(exc)
                events.error("%s", exc)
                return
        self._refusal = None
        if latest is not None and latest.checkpoint.size == self._integrated:
            self._latest = latest
            return
        # A fresh log serves a checkpoint of size 0 from the start (C2SP tlog-checkpoint); a log some entries ahead
        # of its last checkpoint (written by an older version) gets one over them.
        checkpoint = Checkpoint(self.origin, self._integrated, root)
        signed = SignedCheckpoint(checkpoint, sign_note(checkpoint.text(), self.key))
        with self._transaction():
            self._db.execute("INSERT OR REPLACE INTO state VALUES ('checkpoint', ?)", (signed.to_text(),))
        self._latest = signed

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
        """Hash every sequenced entry not yet in the tree (entries another process appended) and store all
        hashes not stored yet."""
        self._flush()
        while self._integrated < self._next_index:
            rows = self._db.execute(
                "SELECT idx, leaf FROM entries WHERE idx >= ? ORDER BY idx LIMIT ?", (self._integrated, INTEGRATE_CHUNK)
            ).fetchall()
            for position, (index, _) in enumerate(rows):
                if index != self._integrated + position:
                    raise VerificationFailed(
                        f"log storage: entry {self._integrated + position} is missing (found {index} next)"
                    )
            integrated = self._hash_in(self._integrated, [leaf for _, leaf in rows], self._frontier)
            with self._transaction():
                self._store_integration(integrated.tiles, integrated.upper, integrated.size)
            self.reader.remember(integrated.upper, integrated.tiles)
            self._frontier, self._integrated, self._flushed = integrated.frontier, integrated.size, integrated.size
        return self._integrated

    def _hash_in(self, start: int, leaves: Sequence[bytes], frontier: list[tuple[int, bytes]]) -> _Integrated:
        """Hash leaves [start, start + len) into the tree whose complete subtrees are `frontier`; nothing is stored."""
        tiles: dict[int, bytearray] = {}
        upper: list[tuple[int, bytes]] = []
        frontier = list(frontier)
        sha256 = hashlib.sha256
        index = start
        for leaf in leaves:
            tile_index = index >> TILE_HEIGHT
            tile = tiles.get(tile_index)
            if tile is None:
                # Only the right-edge tile can hold hashes already: the one hashed since the last flush, or the stored
                # one, read on this connection, not through the readers' cache.
                stored = self._unflushed_tiles.get(tile_index)
                if stored is None and tile_index << TILE_HEIGHT < start:
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
            index += 1
        return _Integrated({i: bytes(tile) for i, tile in tiles.items()}, upper, frontier, index)

    def _store_integration(self, tiles: dict[int, bytes], upper: Sequence[tuple[int, bytes]], size: int) -> None:
        self._db.executemany("INSERT OR REPLACE INTO tiles (idx, hashes) VALUES (?, ?)", tiles.items())
        self._db.executemany("INSERT OR REPLACE INTO hashes (id, hash) VALUES (?, ?)", upper)
        self._db.execute("INSERT OR REPLACE INTO state VALUES ('integrated_size', ?)", (size,))

    def _load_frontier(self, size: int) -> list[tuple[int, bytes]]:
        keys = merkle._complete_subtrees(0, size)
        return list(zip([level for level, _ in keys], self.reader.hashes(keys), strict=True))

    def sign_checkpoint(self) -> SignedCheckpoint:
        """Publish the latest checkpoint: integrate, sign one over the whole tree unless the latest covers it, and
        store it among the published checkpoints (those witnesses cosign); return it. Appends already sign a
        checkpoint per batch: this is the cadence's step, and a no-op when nothing grew since the last one.

        Refuses (VerificationFailed) to sign a tree that is not consistent with the last signed checkpoint."""
        return self._run(self._sign_checkpoint)

    def _sign_checkpoint(self) -> SignedCheckpoint:
        size = self._integrate()
        self._sync_wal()  # batches committed but not yet synced: never sign over entries a crash could lose
        published = self.latest_published()
        if published is not None and published.checkpoint.size == size:
            return published
        latest = self.latest_checkpoint()
        if latest is not None and latest.checkpoint.size == size and self._refusal is None:
            signed = latest  # signed with the batch that made this size
        else:
            root = merkle.root_hash(size, self.reader.hashes)
            for last in (latest, published):
                if last is not None:
                    self._check_consistent(last.checkpoint, size, root)
            checkpoint = Checkpoint(self.origin, size, root)
            signed = SignedCheckpoint(checkpoint, sign_note(checkpoint.text(), self.key))
        with self._transaction():
            self._db.execute(
                "INSERT OR IGNORE INTO checkpoints (size, root, note) VALUES (?, ?, ?)",
                (size, signed.checkpoint.root, signed.to_text()),
            )
            self._db.execute("INSERT OR REPLACE INTO state VALUES ('checkpoint', ?)", (signed.to_text(),))
        self._refusal, self._latest = None, signed
        return self.latest_published() or signed

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
            if self._latest is not None and self._latest.checkpoint.size == size:
                self._latest = signed  # answers proved under it now carry the cosignatures too
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
        """The newest signed checkpoint (what /checkpoint serves): the one signed with the last batch, or the
        published one of the same size with the cosignatures collected for it."""
        published = self.latest_published()
        row = self.reader.db.execute("SELECT value FROM state WHERE name = 'checkpoint'").fetchone()
        if row is None:
            return published
        latest = SignedCheckpoint.parse(row[0], f"log {self.origin} checkpoint")
        durable = self._latest
        if durable is not None and latest.checkpoint.size > durable.checkpoint.size:
            latest = durable  # a batch committed, its fsync still running: its checkpoint is not served yet
        if published is not None and published.checkpoint.size >= latest.checkpoint.size:
            return published
        return latest

    def latest_published(self) -> SignedCheckpoint | None:
        """The newest checkpoint published on the cadence: the one witnesses were asked to cosign."""
        row = self.reader.db.execute("SELECT note FROM checkpoints ORDER BY size DESC LIMIT 1").fetchone()
        return None if row is None else SignedCheckpoint.parse(row[0], f"log {self.origin} checkpoint")

    @property
    def signed_checkpoint(self) -> SignedCheckpoint | None:
        """The newest checkpoint this process signed (or read at start), from memory: for the answer's proof."""
        return self._latest

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
        if size > integrated and not self._closed and threading.current_thread() is not self._writer:
            self._run(self._catch_up)  # another process may have written more: take it in first
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

    def prove(self, index: int, checkpoint: SignedCheckpoint | None = None, leaf: bytes | None = None) -> TlogProof:
        """A C2SP tlog-proof for entry `index` under `checkpoint` (default: the newest published checkpoint that
        covers it, which witnesses cosign, else the latest). The proof is checked before it is returned; `leaf`,
        when the caller has the entry, saves reading it back."""
        if checkpoint is None:
            checkpoint = self.latest_published()
            if checkpoint is None or index >= checkpoint.checkpoint.size:
                checkpoint = self.latest_checkpoint()
        if checkpoint is None or index >= checkpoint.checkpoint.size:
            covered = 0 if checkpoint is None else checkpoint.checkpoint.size
            raise NotFound(f"log entry {index}: no checkpoint covers it yet (latest covers {covered} entries)")
        if leaf is None:
            leaf, _ = self.entry(index)
        proof = self._prover_for(checkpoint.checkpoint).prove(index, merkle.leaf_hash(leaf))
        return TlogProof(index, tuple(proof), checkpoint)

    def prove_text(self, index: int, checkpoint: SignedCheckpoint, leaf: bytes) -> str:
        """`prove(index, checkpoint, leaf).to_text()`, with the base64 of the hashes a batch shares written once."""
        lines = self._prover_for(checkpoint.checkpoint).proof_lines(index, merkle.leaf_hash(leaf))
        return proof_text(index, lines, checkpoint)

    def _prover_for(self, checkpoint: Checkpoint) -> CheckpointProver:
        """A prover for the tree `checkpoint` signed. The one for the newest checkpoint asked about is kept, so the
        answers of a batch, all proved under the checkpoint signed with it, share their reads and checks."""
        size, root = checkpoint.size, checkpoint.root
        self._covered(size, f"inclusion proof in size {size}")
        kept = self._prover
        if kept is not None and kept.size == size and kept.root == root:
            return kept
        prover = CheckpointProver(size, root, self.reader.hashes)
        if kept is None or size > kept.size:
            self._prover = prover
        return prover

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
        latest = self.latest_checkpoint()
        if latest is not None and latest.checkpoint.size not in checkpoints:
            checkpoints[latest.checkpoint.size] = latest  # the one signed with the last batch
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
