"""The log's SQLite schema and the reads every thread may do.

Entries are sequenced durably (synchronous=FULL) and integrated separately: integration writes the hashes of
every complete subtree, keyed by `level << 48 | index`, and can always be redone from the entries, so its
commits need not wait for the disk.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from veriml.errors import NotFound, VerificationFailed
from veriml.tlog.merkle import MAX_SIZE, SubtreeKey

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    idx INTEGER PRIMARY KEY,       -- the index assigned at sequencing, never reused
    leaf BLOB NOT NULL,            -- the log entry: what the Merkle leaf hashes
    extra BLOB NOT NULL            -- kept beside the entry, unhashed (a signed receipt, addressed by the leaf)
);
CREATE TABLE IF NOT EXISTS hashes (
    id INTEGER PRIMARY KEY,        -- level << 48 | index of a complete subtree
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


def connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    return db


CACHED_LEVELS_FROM = 6  # hashes at tree level 6 and up (1 in 32 of all) are also kept in memory


class Reader:
    """Reads from any thread, each on its own connection (WAL readers see the last committed state).

    An inclusion proof at size n needs about log2(n) scattered hashes; those of the upper levels are few
    (n/32 in all) and shared by every proof, so they are kept in memory and only the lowest levels are read."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        first = hash_id((CACHED_LEVELS_FROM, 0))
        self._upper: dict[int, bytes] = dict(self.db.execute("SELECT id, hash FROM hashes WHERE id >= ?", (first,)))

    def remember(self, rows: Sequence[tuple[int, bytes]]) -> None:
        """Add newly integrated hashes to the in-memory upper levels (called after their commit)."""
        first = hash_id((CACHED_LEVELS_FROM, 0))
        self._upper.update(row for row in rows if row[0] >= first)

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

    def hashes(self, keys: Sequence[SubtreeKey]) -> list[bytes]:
        if not keys:
            return []
        ids = [hash_id(key) for key in keys]
        upper = self._upper
        found: dict[int, bytes] = {}
        lower = []
        for id_ in ids:
            value = upper.get(id_)
            if value is None:
                lower.append(id_)
            else:
                found[id_] = value
        for start in range(0, len(lower), 500):  # stay under SQLite's parameter limit
            chunk = lower[start : start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(self.db.execute(f"SELECT id, hash FROM hashes WHERE id IN ({marks})", chunk).fetchall())
        missing = [key for key, id_ in zip(keys, ids, strict=True) if id_ not in found]
        if missing:
            raise VerificationFailed(f"log storage: stored hashes are missing for subtrees {missing[:3]}")
        return [found[id_] for id_ in ids]

    def level_range(self, level: int, start: int, count: int) -> list[bytes]:
        rows = self.db.execute(
            "SELECT id, hash FROM hashes WHERE id >= ? AND id < ? ORDER BY id",
            (hash_id((level, start)), hash_id((level, start + count))),
        ).fetchall()
        if len(rows) != count:
            raise NotFound(f"log: hashes {start}..{start + count - 1} at level {level} are not all integrated")
        return [row[1] for row in rows]

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
