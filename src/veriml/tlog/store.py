"""The log's SQLite schema and the reads every thread may do.

Entries are sequenced durably (synchronous=FULL) and integrated separately. Integration stores the hash of
every complete subtree, and can always be redone from the entries, so its commits need not wait for the disk:

- the bottom 8 tree levels in **tiles**: one row per 256 leaves holding the whole subtree of height 8 over
  them (511 hashes, level by level: 256 leaf hashes, then 128, ..., 1), with zeros where a right-edge subtree
  is not complete yet. Its first 256 hashes are the C2SP tlog-tiles level-0 tile.
- levels 8 and up as one row per hash, keyed by `level << 48 | index`, and also kept in memory (n/128 hashes).
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

from veriml.errors import NotFound, VerificationFailed
from veriml.tlog.merkle import HASH_SIZE, MAX_SIZE, SubtreeKey

TILE_HEIGHT = 8
TILE_LEAVES = 1 << TILE_HEIGHT
TILE_SLOTS = 2 * TILE_LEAVES - 1
TILE_BYTES = TILE_SLOTS * HASH_SIZE
ZERO = bytes(HASH_SIZE)

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    idx INTEGER PRIMARY KEY,       -- the index assigned at sequencing, never reused
    leaf BLOB NOT NULL,            -- the log entry: what the Merkle leaf hashes
    extra BLOB NOT NULL            -- kept beside the entry, unhashed (a signed receipt, addressed by the leaf)
);
CREATE TABLE IF NOT EXISTS tiles (
    idx INTEGER PRIMARY KEY,       -- leaves [idx * 256, idx * 256 + 256)
    hashes BLOB NOT NULL           -- 511 hashes: tree levels 0..8 of that subtree, zeros where not complete
);
CREATE TABLE IF NOT EXISTS hashes (
    id INTEGER PRIMARY KEY,        -- level << 48 | index of a complete subtree, for levels >= 8
    hash BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS state (
    name TEXT PRIMARY KEY,
    value
);
CREATE TABLE IF NOT EXISTS checkpoints (
    size INTEGER PRIMARY KEY,
    root BLOB NOT NULL,
    note TEXT NOT NULL             -- the signed note, with the cosignatures collected for it
);
"""


def hash_id(key: SubtreeKey) -> int:
    level, index = key
    return level << 48 | index


def tile_slot(key: SubtreeKey) -> tuple[int, int]:
    """(tile index, slot in the tile) of a complete subtree below level 8."""
    level, index = key
    per_tile = TILE_LEAVES >> level
    return index // per_tile, (2 * TILE_LEAVES - (2 * TILE_LEAVES >> level)) + index % per_tile


def connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    return db


class Reader:
    """Reads from any thread, each on its own connection (WAL readers see the last committed state)."""

    def __init__(self, path: Path, tile_cache: int = 64) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._upper: dict[int, bytes] = dict(self.db.execute("SELECT id, hash FROM hashes"))
        self._tiles: OrderedDict[int, bytes] = OrderedDict()  # recently read tiles; replaced when rewritten
        self._unflushed: dict[int, bytes] = {}  # tiles the writer hashed but has not stored yet
        self._tile_cache = tile_cache
        self._generation = 0  # moves on every integration, so a read that raced one is not cached

    @property
    def db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = connect(self.path)
            self._local.db = db
            with self._lock:
                self._all.append(db)
        return db

    def close(self) -> None:
        with self._lock:
            for db in self._all:
                db.close()
            self._all.clear()
        self._local = threading.local()

    def remember(self, upper: Sequence[tuple[int, bytes]], tiles: dict[int, bytes], unflushed: bool = False) -> None:
        """Take in what an integration just computed. `unflushed` tiles are not stored yet: they are served from
        memory, never evicted, until `flushed` says they are."""
        self._upper.update(upper)
        with self._lock:
            self._generation += 1
            for index, blob in tiles.items():
                if unflushed:
                    self._unflushed[index] = blob
                    self._tiles.pop(index, None)
                elif index in self._tiles:
                    self._tiles[index] = blob

    def flushed(self, indices: Sequence[int]) -> None:
        with self._lock:
            self._generation += 1
            for index in indices:
                self._unflushed.pop(index, None)

    def reload(self) -> None:
        """Forget what is cached: another process may have written the log."""
        upper = dict(self.db.execute("SELECT id, hash FROM hashes"))
        with self._lock:
            self._generation += 1
            self._upper = upper
            self._tiles.clear()
            self._unflushed.clear()

    def tile(self, index: int) -> bytes | None:
        with self._lock:
            blob = self._unflushed.get(index) or self._tiles.get(index)
            if blob is not None:
                if index in self._tiles:
                    self._tiles.move_to_end(index)
                return blob
            generation = self._generation
        row = self.db.execute("SELECT hashes FROM tiles WHERE idx = ?", (index,)).fetchone()
        if row is None:
            return None
        with self._lock:
            if generation != self._generation:
                return row[0]  # an integration committed meanwhile: this copy may be stale, do not keep it
            self._tiles[index] = row[0]
            while len(self._tiles) > self._tile_cache:
                self._tiles.popitem(last=False)
        return row[0]

    def hashes(self, keys: Sequence[SubtreeKey]) -> list[bytes]:
        upper = self._upper
        tiles: dict[int, bytes] = {}  # each tile read once per call: a proof's low levels share one tile
        result = []
        for level, index in keys:
            if level >= TILE_HEIGHT:
                value = upper.get(level << 48 | index)
            else:
                shift = TILE_HEIGHT - level
                tile_index = index >> shift
                blob = tiles.get(tile_index)
                if blob is None:
                    blob = tiles[tile_index] = self.tile(tile_index) or b""
                offset = ((2 * TILE_LEAVES - (2 * TILE_LEAVES >> level)) + (index & ((1 << shift) - 1))) * HASH_SIZE
                value = blob[offset : offset + HASH_SIZE]
                if len(value) != HASH_SIZE or value == ZERO:
                    value = None
            if value is None:
                raise VerificationFailed(f"log storage: the stored hash of subtree {(level, index)} is missing")
            result.append(value)
        return result

    def level_range(self, level: int, start: int, count: int) -> list[bytes]:
        """`count` consecutive complete-subtree hashes at a tree level (a C2SP tile's contents)."""
        try:
            return self.hashes([(level, start + i) for i in range(count)])
        except VerificationFailed as exc:
            raise NotFound(f"log: hashes {start}..{start + count - 1} at level {level} are not all integrated") from exc

    def state(self, name: str, default: object = None) -> object:
        row = self.db.execute("SELECT value FROM state WHERE name = ?", (name,)).fetchone()
        return default if row is None else row[0]

    def entry(self, index: int) -> tuple[bytes, bytes]:
        row = self.db.execute("SELECT leaf, extra FROM entries WHERE idx = ?", (index,)).fetchone()
        if row is None:
            raise NotFound(f"log entry {index}: not in this log")
        return row[0], row[1]

    def entries(self, start: int, count: int) -> list[bytes]:
        rows = self.db.execute(
            "SELECT idx, leaf FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx", (start, start + count)
        ).fetchall()
        if len(rows) != count or (rows and rows[-1][0] != start + count - 1):
            raise NotFound(f"log entries {start}..{start + count - 1}: not all present")
        return [row[1] for row in rows]

    def sequenced_size(self) -> int:
        row = self.db.execute("SELECT MAX(idx) FROM entries").fetchone()
        return 0 if row[0] is None else row[0] + 1


assert MAX_SIZE == 1 << 48
