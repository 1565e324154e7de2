"""The registry of model names, owners and versions, in SQLite.

Rules kept here, inside one write transaction so that concurrent publishers cannot race past them: the key
that published version 1 of a name owns it; versions are 1, 2, 3… with each naming its predecessor as parent.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from veriml.codec import Digest, canonical_json, parse_json
from veriml.errors import NotFound
from veriml.hub.manifest import SignedManifest, parse_signed_manifest

LATEST_RECHECK_SECONDS = 0.05

_SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL          -- verifier key text of the publisher of version 1
);
CREATE TABLE IF NOT EXISTS versions (
    name TEXT NOT NULL REFERENCES models(name),
    version INTEGER NOT NULL,
    manifest_id TEXT NOT NULL UNIQUE,
    blob_id TEXT NOT NULL,
    signed_manifest BLOB NOT NULL,  -- canonical JSON of {body, signature}
    PRIMARY KEY (name, version)
);
CREATE INDEX IF NOT EXISTS versions_by_blob ON versions(blob_id);
CREATE TABLE IF NOT EXISTS zk_documents (
    manifest_id TEXT PRIMARY KEY,   -- the model version the circuit was set up for
    signed_document BLOB NOT NULL   -- canonical JSON of the publisher-signed ZK document
);
"""


class Registry:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection guarded by a lock: writes are rare, and the node serves reads from many threads.
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._lock = threading.RLock()
        # Manifests are immutable, so a parsed one can be kept by id; this keeps parsing off the inference path.
        self._parsed: dict[str, SignedManifest] = {}
        # The latest version of each name, kept while the database is unchanged. PRAGMA data_version moves
        # when another connection (a CLI publishing beside a running node) commits; asking costs more than the
        # rest of a lookup, so it is asked at most every LATEST_RECHECK_SECONDS. This connection's own
        # writes invalidate at once.
        self._latest: dict[str, SignedManifest] = {}
        self._seen_version = -1
        self._checked_at = float("-inf")
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A write transaction; everything inside commits together or not at all."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _manifest(self, manifest_id: str, stored: bytes) -> SignedManifest:
        found = self._parsed.get(manifest_id)
        if found is None:
            found = parse_signed_manifest(parse_json(stored))
            if len(self._parsed) < 4096:
                self._parsed[manifest_id] = found
        return found

    def _row(self, sql: str, *args: object) -> tuple | None:
        with self._lock:
            return self._db.execute(sql, args).fetchone()

    def owner(self, name: str) -> str | None:
        row = self._row("SELECT owner FROM models WHERE name = ?", name)
        return row[0] if row else None

    def namespace_owner(self, owner: str) -> str | None:
        """The key (verifier key text) that holds names under `owner/`: the first to publish one claimed it."""
        pattern = owner.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/%"
        row = self._row("SELECT owner FROM models WHERE name LIKE ? ESCAPE '\\' ORDER BY rowid LIMIT 1", pattern)
        return row[0] if row else None

    def owned_by(self, key: str) -> list[str]:
        with self._lock:
            return [row[0] for row in self._db.execute("SELECT name FROM models WHERE owner = ? ORDER BY name", (key,))]

    def latest(self, name: str) -> SignedManifest | None:
        with self._lock:
            now = time.monotonic()
            if now - self._checked_at >= LATEST_RECHECK_SECONDS:
                self._checked_at = now
                data_version = self._db.execute("PRAGMA data_version").fetchone()[0]
                if data_version != self._seen_version:
                    self._latest.clear()
                    self._seen_version = data_version
            cached = self._latest.get(name)
            if cached is not None:
                return cached
        row = self._row(
            "SELECT manifest_id, signed_manifest FROM versions WHERE name = ? ORDER BY version DESC LIMIT 1",
            name,
        )
        if row is None:
            return None
        found = self._manifest(*row)
        with self._lock:
            self._latest[name] = found
        return found

    def get(self, name: str, version: int | None = None) -> SignedManifest:
        if version is None:
            found = self.latest(name)
            if found is None:
                raise NotFound(f"model {name}: not published here")
            return found
        row = self._row(
            "SELECT manifest_id, signed_manifest FROM versions WHERE name = ? AND version = ?", name, version
        )
        if row is None:
            latest = self.latest(name)
            have = f"latest is @{latest.body.version}" if latest else "no versions here"
            raise NotFound(f"model {name}@{version}: no such version ({have})")
        return self._manifest(*row)

    def by_id(self, manifest_id: Digest) -> SignedManifest:
        cached = self._parsed.get(str(manifest_id))  # immutable: a parsed manifest is good forever
        if cached is not None:
            return cached
        row = self._row("SELECT manifest_id, signed_manifest FROM versions WHERE manifest_id = ?", str(manifest_id))
        if row is None:
            raise NotFound(f"manifest {manifest_id}: not stored here")
        return self._manifest(*row)

    def version_with_blob(self, name: str, blob: Digest) -> SignedManifest | None:
        row = self._row(
            "SELECT manifest_id, signed_manifest FROM versions WHERE name = ? AND blob_id = ? ORDER BY version LIMIT 1",
            name,
            str(blob),
        )
        return self._manifest(*row) if row else None

    def insert(self, signed: SignedManifest) -> None:
        """Store a manifest whose rules the caller checked in the same transaction."""
        body = signed.body
        with self._lock:
            self._latest.pop(body.name, None)  # data_version does not move for this connection's own writes
            if body.version == 1:
                self._db.execute("INSERT INTO models (name, owner) VALUES (?, ?)", (body.name, body.publisher.vkey))
            self._db.execute(
                "INSERT INTO versions (name, version, manifest_id, blob_id, signed_manifest) VALUES (?, ?, ?, ?, ?)",
                (body.name, body.version, str(signed.id), str(body.blob), canonical_json(signed.to_json())),
            )

    def put_zk_document(self, manifest_id: Digest, signed_document: bytes) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO zk_documents (manifest_id, signed_document) VALUES (?, ?)",
                (str(manifest_id), signed_document),
            )

    def zk_document(self, manifest_id: Digest) -> bytes:
        row = self._row("SELECT signed_document FROM zk_documents WHERE manifest_id = ?", str(manifest_id))
        if row is None:
            raise NotFound(f"manifest {manifest_id}: no ZK setup here (run `veriml zk setup`)")
        return row[0]

    def names(self) -> list[str]:
        with self._lock:
            return [row[0] for row in self._db.execute("SELECT name FROM models ORDER BY name")]

    def versions(self, name: str) -> list[SignedManifest]:
        with self._lock:
            rows = self._db.execute(
                "SELECT manifest_id, signed_manifest FROM versions WHERE name = ? ORDER BY version", (name,)
            ).fetchall()
        if not rows:
            raise NotFound(f"model {name}: not published here")
        return [self._manifest(*row) for row in rows]
