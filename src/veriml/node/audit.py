"""Audit: each node re-executes a sample of its peers' log entries and signs attestations. A disagreement is kept
as evidence (the peer's signed receipt beside this node's signed attestation), and so is a refusal: a sampled
entry the peer would not serve with a valid proof and the data behind it, beside the peer's signed checkpoint
that covers it.

The sample is fixed before any peer can react: entry i of log L is sampled when HMAC-SHA256(seed, L, i) falls
under the audit fraction, where the seed is this node's secret and its SHA-256 is published in /v1/info. The
audited node cannot predict the sample, and the auditor cannot redraw it: a sampled entry is asked for until it
is answered, and every refusal is recorded, so a node that cheats on c entries is caught on about fraction * c of
them, and escapes one auditor entirely only with probability (1 - fraction)^c. The audited size of a log advances
only past entries that were not sampled, examined, or recorded as refused. Revealing the seed later lets anyone
check that the auditor followed its sample.

Each round holds a peer's log to one history: the checkpoint this node's witness cosigned, the one the last round
held and the one the peer serves, tied by consistency proofs computed from the peer's own tiles (a proven fork
is recorded), and every sampled entry is proven from those tiles under it. What a peer serves is read bounded
in size and time (`veriml.bounded_get`), so no answer, or lack of one, stops an audit with nothing recorded; and
peers are audited side by side, so a peer that answers slowly holds up its own audit only.
docs/network.md ("Audit") says what becomes of each entry, and docs/threat-model.md which attack each rule stops.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import logging
import math
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from veriml.background import BackgroundJob
from veriml.bounded_get import Stopped, bounded_get
from veriml.codec import canonical_json, parse_json, tensors_from_json
from veriml.codec.clock import utc_timestamp
from veriml.errors import InvalidInput, RunTooLong, Unavailable, VerificationFailed, VerimlError
from veriml.fsutil import atomic_write
from veriml.identity import VerifyingKey
from veriml.node.audit_lanes import AuditLanes
from veriml.node.auditor_auth import AuditorGate, sign_request
from veriml.node.disclosure import MAX_ENTRIES_PER_REQUEST, Disclosure, Retention, _timestamp_seconds
from veriml.node.limits import check_reexecution
from veriml.receipts import ReceiptLeaf, SignedAttestation, parse_signed_receipt
from veriml.receipts.commitment import parse_salt
from veriml.tlog import SignedCheckpoint, TrustPolicy, merkle
from veriml.tlog.tile_reader import CHECKPOINT_BYTES, TileLog

if TYPE_CHECKING:
    from veriml.node.node import Node

events = logging.getLogger("veriml.node")
MAX_ENTRIES_PER_ROUND = 10_000  # a huge claimed size cannot stall a round
MAX_SAMPLED_PER_ROUND = 200  # requests per peer per round: well under the peers' per-auditor rate limit
RETRIES_PER_ROUND = 50  # open refusals asked again per peer per round
MIN_RETENTION = 86400.0  # seconds a peer must keep an auditable request's data before deleting it
PACE = 80.0  # entries asked for per second at most, under the per-auditor limit peers apply (auditor_auth.RATE)
SEED_BYTES = 32
RETENTION_TTL = 60.0  # seconds a peer's stated retention is used before it is asked again
MAX_ANSWER_BYTES = 64 << 20  # a peer's answer held at most (a node's own JSON body limit, max_json_bytes)
MAX_ANSWER_CONTAINERS = 1 << 20  # JSON arrays and objects in one answer: each costs ~60 bytes once parsed
FETCH_DEADLINE = 60.0  # seconds for any one answer from a peer, however it drips
ROUND_TIME = 180.0  # seconds of entry requests one round spends on one peer at most
MAX_PEERS_AT_ONCE = 4  # peers audited side by side, in the prompt lane (audit_lanes.py)
SLOW_PEERS_AT_ONCE = 2  # and rounds past PROMPT_ROUND, in the slow lane
PROMPT_ROUND = 30.0  # seconds a round may take and its peer still count as prompt
MAX_OPEN_REFUSALS = 100_000  # open refusals kept one by one per peer; past them, new ones are only counted
REFUSAL_SPAN = 600.0  # seconds a refusal must have lasted inside the window to stand once the data is deleted
SIGHTING_GRAIN = 600.0  # seconds within which only the first and last sightings of a peer's log are kept
MAX_SIGHTING_AGE = 30 * 86400.0  # sightings kept at most this long, whatever retention a peer states
MAX_SIGHTINGS = 10_000  # sightings kept per peer at most (the newest), however its sizes move
FORKS_KEPT = 20  # fork records kept per peer (its first and its newest)
CLOCK_SLACK = 300.0  # seconds a receipt's date may precede this auditor's sighting of the log without it (clocks)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS attestations (
    id INTEGER PRIMARY KEY,
    subject TEXT NOT NULL,        -- the audited node's key
    log_index INTEGER NOT NULL,
    verdict TEXT NOT NULL,
    attestation TEXT NOT NULL,    -- this node's signed attestation
    receipt TEXT NOT NULL         -- the audited node's signed receipt
);
CREATE TABLE IF NOT EXISTS audited (origin TEXT PRIMARY KEY, size INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS examined (  -- every sampled entry and what became of it
    origin TEXT NOT NULL,
    log_index INTEGER NOT NULL,
    outcome TEXT NOT NULL,        -- agree, disagree, not-comparable, private, deleted, over-limits, refused
    PRIMARY KEY (origin, log_index)
);
CREATE TABLE IF NOT EXISTS refusals (
    origin TEXT NOT NULL,
    subject TEXT NOT NULL,        -- the audited node's key
    log_index INTEGER NOT NULL,
    reason TEXT NOT NULL,         -- the last answer, or its absence
    checkpoint TEXT NOT NULL,     -- the audited node's signed checkpoint covering the entry
    first_at TEXT NOT NULL,
    last_at TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    answered_at TEXT,             -- set once the entry was served after all
    PRIMARY KEY (origin, log_index)
);
CREATE TABLE IF NOT EXISTS views (  -- the newest checkpoint of each peer's log this auditor holds it to
    origin TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    note TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sightings (  -- when the peer last served a checkpoint of each size: entries at or past
    origin TEXT NOT NULL,               -- that size were not in its log yet, whatever their receipts are dated
    size INTEGER NOT NULL,
    last_seen REAL NOT NULL,
    PRIMARY KEY (origin, size)
);
CREATE TABLE IF NOT EXISTS refusals_over_cap (  -- refusals past MAX_OPEN_REFUSALS, counted, never closed
    origin TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    refused INTEGER NOT NULL,
    first_at TEXT NOT NULL,
    last_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sightings_by_time ON sightings (origin, last_seen);
CREATE TABLE IF NOT EXISTS forks (  -- two checkpoints the peer signed that are not one history
    origin TEXT NOT NULL,
    subject TEXT NOT NULL,
    held TEXT NOT NULL,             -- the checkpoint this auditor held the peer to (or it served), signed
    other TEXT NOT NULL,            -- a newer one the peer signed that does not extend it
    detail TEXT NOT NULL,
    found_at TEXT NOT NULL,
    PRIMARY KEY (origin, held, other)
);
"""


_LOG_TABLES = ("audited", "examined", "refusals", "views", "sightings", "refusals_over_cap", "forks")


def sampled(seed: bytes, origin: str, index: int, fraction: float) -> bool:
    """Whether entry `index` of log `origin` is in the sample of the auditor holding `seed`."""
    mac = hmac.new(seed, origin.encode("utf-8") + b"\n" + index.to_bytes(8, "big"), hashlib.sha256).digest()
    return int.from_bytes(mac[:8], "big") < fraction * (1 << 64)


def load_seed(path: Path) -> bytes:
    """This node's audit seed, made on first use (mode 0600)."""
    try:
        seed = bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        seed = secrets.token_bytes(SEED_BYTES)
        atomic_write(path, seed.hex().encode() + b"\n", mode=0o600)
    if len(seed) != SEED_BYTES:
        raise InvalidInput(f"audit seed {path}: expected {SEED_BYTES} bytes of hex")
    return seed


class AuditStore:
    """What this auditor found, per log. A log is named by its verifier key text (origin and key, the `origin`
    column), so two peers that name one origin are two logs."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # A crash may lose the last records, never reorder them: the audited size, written after what it covers,
        # is lost with them, so nothing unexamined is ever recorded as audited.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        with contextlib.suppress(sqlite3.OperationalError):  # a store made before refusals could be final
            self._db.execute("ALTER TABLE refusals ADD COLUMN final INTEGER NOT NULL DEFAULT 0")
        self._lock = threading.Lock()

    def adopt(self, origin: str, log: str) -> None:
        """Move records written when logs went by origin alone to the log `log` of that origin, unless it has
        records of its own. Done once a log: later records are written under `log`."""
        with self._lock:
            if self._db.execute("SELECT 1 FROM audited WHERE origin = ?", (log,)).fetchone() is not None:
                return
            with self._db:  # one transaction: all or nothing
                self._db.execute("BEGIN")
                for table in _LOG_TABLES:
                    # OR IGNORE: a row the log already has (a round that failed before its audited size was
                    # written) stays, and the old one beside it is left unused.
                    self._db.execute(f"UPDATE OR IGNORE {table} SET origin = ? WHERE origin = ?", (log, origin))

    def audited_size(self, log: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT size FROM audited WHERE origin = ?", (log,)).fetchone()
        return 0 if row is None else row[0]

    def set_audited(self, log: str, size: int) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO audited (origin, size) VALUES (?, ?)", (log, size))

    def _examined(self, log: str, index: int, outcome: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO examined VALUES (?, ?, ?)", (log, index, outcome))
        if outcome != "refused":
            self._db.execute(
                "UPDATE refusals SET answered_at = ? WHERE origin = ? AND log_index = ? AND answered_at IS NULL",
                (utc_timestamp(), log, index),
            )

    def attested(self, log: str, index: int, attestation: SignedAttestation, receipt: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT INTO attestations (subject, log_index, verdict, attestation, receipt)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (attestation.body.subject.vkey, index, attestation.body.verdict,
                     canonical_json(attestation.to_json()).decode(), json.dumps(receipt)),
                )  # fmt: skip
                self._examined(log, index, attestation.body.verdict)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def unattestable(self, log: str, index: int, outcome: str) -> None:
        """A sampled entry examined as far as it can be: private (never disclosed), or deleted after retention."""
        with self._lock:
            self._examined(log, index, outcome)

    def refused(self, log: str, subject: str, index: int, reason: str, checkpoint: str,
                over_cap: bool = False) -> None:  # fmt: skip
        """Record a refusal (a refusal answered before and refused again starts anew). `over_cap`: the peer has
        MAX_OPEN_REFUSALS open already, so a new one is only counted (never asked again, never closed)."""
        now = utc_timestamp()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                known = self._db.execute(
                    "SELECT 1 FROM refusals WHERE origin = ? AND log_index = ?", (log, index)
                ).fetchone()
                if over_cap and known is None:
                    self._db.execute(
                        "INSERT INTO refusals_over_cap VALUES (?, ?, 1, ?, ?) ON CONFLICT (origin) DO UPDATE SET"
                        " refused = refused + 1, last_at = excluded.last_at",
                        (log, subject, now, now),
                    )
                else:
                    self._db.execute(
                        "INSERT INTO refusals (origin, subject, log_index, reason, checkpoint, first_at, last_at,"
                        " attempts) VALUES (?, ?, ?, ?, ?, ?, ?, 1)"
                        " ON CONFLICT (origin, log_index) DO UPDATE SET reason = excluded.reason,"
                        " checkpoint = excluded.checkpoint, last_at = excluded.last_at,"
                        " first_at = CASE WHEN answered_at IS NULL THEN first_at ELSE excluded.first_at END,"
                        " attempts = CASE WHEN answered_at IS NULL THEN attempts + 1 ELSE 1 END, answered_at = NULL",
                        (log, subject, index, reason, checkpoint, now, now),
                    )
                self._examined(log, index, "refused")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def view(self, log: str) -> SignedCheckpoint | None:
        with self._lock:
            row = self._db.execute("SELECT note FROM views WHERE origin = ?", (log,)).fetchone()
        return None if row is None else SignedCheckpoint.parse(row[0], f"audited view of {log}")

    def set_view(self, log: str, checkpoint: SignedCheckpoint) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO views VALUES (?, ?, ?)",
                             (log, checkpoint.checkpoint.size, checkpoint.to_text()))  # fmt: skip

    def sighted(self, log: str, size: int, at: float, horizon: float) -> None:
        """The peer served a checkpoint of `size` at time `at`. Sightings older than `horizon` no longer bound any
        entry's age that matters, and go (all but the largest size); within SIGHTING_GRAIN seconds only the
        earliest and the latest are kept. Dropping a sighting only makes the bound it gave an earlier time, so the
        table stays small (a few thousand rows a peer) and an honest peer is never held to more than it promised.
        """
        with self._lock:
            self._db.execute(
                "INSERT INTO sightings VALUES (?, ?, ?) ON CONFLICT (origin, size) DO UPDATE SET"
                " last_seen = max(last_seen, excluded.last_seen)",
                (log, size, at),
            )
            self._db.execute(
                "DELETE FROM sightings WHERE origin = ? AND size != ? AND last_seen >= ?"
                " AND size > (SELECT min(size) FROM sightings WHERE origin = ? AND last_seen >= ?)",
                (log, size, at - SIGHTING_GRAIN, log, at - SIGHTING_GRAIN),
            )
            self._db.execute(
                "DELETE FROM sightings WHERE origin = ? AND (last_seen < ? OR rowid NOT IN (SELECT rowid FROM"
                " sightings WHERE origin = ? ORDER BY last_seen DESC LIMIT ?))"
                " AND size < (SELECT max(size) FROM sightings WHERE origin = ?)",
                (log, horizon, log, MAX_SIGHTINGS, log),
            )

    def absent_at(self, log: str, index: int) -> float | None:
        """The last time the peer's served checkpoint did not cover entry `index`, if this auditor saw one."""
        with self._lock:
            row = self._db.execute(
                "SELECT max(last_seen) FROM sightings WHERE origin = ? AND size <= ?", (log, index)
            ).fetchone()
        return row[0]

    def forked(self, log: str, subject: str, held: str, other: str, detail: str) -> None:
        """Record a fork; a peer's first forks are kept, and its newest, up to FORKS_KEPT in all, so that a peer
        signing a new shadow checkpoint every round cannot fill this node's disk."""
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO forks VALUES (?, ?, ?, ?, ?, ?)",
                             (log, subject, held, other, detail, utc_timestamp()))  # fmt: skip
            self._db.execute(
                "DELETE FROM forks WHERE origin = ? AND rowid NOT IN (SELECT rowid FROM forks WHERE origin = ?"
                " ORDER BY rowid LIMIT ?) AND rowid NOT IN (SELECT rowid FROM forks WHERE origin = ?"
                " ORDER BY rowid DESC LIMIT ?)",
                (log, log, FORKS_KEPT // 2, log, FORKS_KEPT // 2),
            )

    def forks(self, limit: int = 100) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT subject, held, other, detail, found_at FROM forks ORDER BY found_at DESC LIMIT ?", (limit,)
            ).fetchall()
        keys = ("subject", "held", "other", "detail", "found_at")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def open_refusals(self, log: str, limit: int, below: int) -> list[int]:
        """Open refusals of entries under `below` (the round's checkpoint size), the longest unasked first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT log_index FROM refusals WHERE origin = ? AND answered_at IS NULL AND log_index < ?"
                " AND final = 0 ORDER BY last_at LIMIT ?",
                (log, below, limit),
            ).fetchall()
        return [row[0] for row in rows]

    def open_refusal_count(self, log: str) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT count(*) FROM refusals WHERE origin = ? AND answered_at IS NULL", (log,)
            ).fetchone()
        return row[0]

    def make_final(self, log: str, index: int, reason: str) -> None:
        """An open refusal that nothing the peer serves can answer any more (its data is gone): not asked again."""
        with self._lock:
            self._db.execute("UPDATE refusals SET reason = ?, final = 1 WHERE origin = ? AND log_index = ?",
                             (reason, log, index))  # fmt: skip

    def refusal_span(self, log: str, index: int) -> tuple[float, float] | None:
        """When an entry's open refusal was first and last recorded (Unix seconds), if it has one."""
        with self._lock:
            row = self._db.execute(
                "SELECT first_at, last_at FROM refusals WHERE origin = ? AND log_index = ? AND answered_at IS NULL",
                (log, index),
            ).fetchone()
        return None if row is None else (_timestamp_seconds(row[0]), _timestamp_seconds(row[1]))

    def refusals_over_cap(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT subject, refused, first_at, last_at FROM refusals_over_cap").fetchall()
        return [dict(zip(("subject", "refused", "first_at", "last_at"), row, strict=True)) for row in rows]

    def refusals(self, limit: int = 100, include_answered: bool = False) -> list[dict[str, Any]]:
        query = "SELECT subject, log_index, reason, checkpoint, first_at, last_at, attempts, answered_at FROM refusals"
        if not include_answered:
            query += " WHERE answered_at IS NULL"
        with self._lock:
            rows = self._db.execute(query + " ORDER BY first_at DESC, log_index DESC LIMIT ?", (limit,)).fetchall()
        keys = ("subject", "log_index", "reason", "checkpoint", "first_at", "last_at", "attempts", "answered_at")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def outcomes(self, log: str) -> dict[int, str]:
        with self._lock:
            rows = self._db.execute("SELECT log_index, outcome FROM examined WHERE origin = ?", (log,)).fetchall()
        return dict(rows)

    def attestations(self, verdict: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        query = "SELECT subject, log_index, verdict, attestation, receipt FROM attestations"
        args: tuple[Any, ...] = ()
        if verdict is not None:
            query += " WHERE verdict = ?"
            args = (verdict,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        return [
            {"subject": s, "log_index": i, "verdict": v, "attestation": json.loads(a), "receipt": json.loads(r)}
            for s, i, v, a, r in rows
        ]

    def close(self) -> None:
        self._db.close()


@dataclass(slots=True)
class _Round:
    """What one round knows of one peer: its URL and key, the signed checkpoint the round holds its log to (and
    its text), the peer's tiles read at that size, its retention, and when the round's time is up (monotonic)."""

    url: str
    log_key: VerifyingKey
    signed: SignedCheckpoint
    checkpoint: str
    tiles: TileLog
    retention: float
    ends: float  # moved later by the time spent waiting for other rounds' re-executions: not this peer's doing
    over_cap: bool  # the peer has MAX_OPEN_REFUSALS open: new refusals are counted, not kept one by one


class _TilesProveNothing(Unavailable):
    """The peer's tiles could not be read, or do not lead to the root of the checkpoint they were read for."""


def _check_extends(old: SignedCheckpoint, new: SignedCheckpoint, tiles: TileLog) -> None:
    """That `old` is a prefix of `new`, from a consistency proof computed from the tiles read at new's size.
    VerificationFailed only when the log is proven forked: two roots for one size, or tiles that lead to new's
    root (so, by collision resistance, are new's tree) giving old's size another root than the one signed; the
    message then carries the proof, for anyone to check. _TilesProveNothing when the tiles decide nothing."""
    a, b = old.checkpoint, new.checkpoint
    if a.size == b.size:
        if a.root != b.root:
            raise VerificationFailed(f"two checkpoints of size {a.size} with different roots")
        return
    if a.size == 0:
        return
    try:
        proof = tiles.consistency_proof(a.size)
        start = a.root
        if a.size & (a.size - 1) == 0:  # a subtree of new's tree: take its hash from the tiles, not from old
            start = tiles.hashes([(a.size.bit_length() - 1, 0)])[0]
        first, second = merkle.consistency_roots(a.size, b.size, proof, start)
    except VerimlError as exc:
        raise _TilesProveNothing(f"the tiles of checkpoint {b.size} could not be read: {str(exc)[:300]}") from exc
    if second != b.root:
        raise _TilesProveNothing(f"the tiles served do not lead to the root of checkpoint {b.size}")
    if first != a.root:
        hashes = " ".join(base64.b64encode(h).decode() for h in ([start] if start != a.root else []) + proof)
        raise VerificationFailed(
            f"checkpoint {b.size}'s tree has root {base64.b64encode(first).decode()} at size {a.size}, not the one "
            f"signed; consistency proof from the tiles: {hashes}"
        )


class Auditor(BackgroundJob):
    def __init__(self, node: Node, fraction: float, interval: float) -> None:
        self.node = node
        self.fraction = fraction
        self.interval = interval
        root = node.home.root / "audit"
        self.store = AuditStore(root / "audit.sqlite")
        self.seed = load_seed(root / "seed")
        gate = AuditorGate(node.key.public, lambda: [peer.node for peer in node.discovery.peers()])
        self.disclosure = Disclosure(root / "disclosures.sqlite", node.service.log, node.service.hub.registry, gate,
                                     node.config.audit_retention)  # fmt: skip
        self.retention = Retention(self.disclosure)
        # Peers found on chain are endpoints others registered: fetched through the same policy as every other
        # read of them (public addresses only, checked on the address connected to), with no proxy or redirect.
        policy = getattr(node.discovery, "policy", None)
        guarded = {} if policy is None else {"transport": policy.transport(), "trust_env": False}
        self._http = httpx.Client(timeout=30, follow_redirects=False, **guarded)
        self._next_request: dict[str, float] = {}  # url -> when its next batch may be asked for (pacing)
        self._lanes = AuditLanes(MAX_PEERS_AT_ONCE, SLOW_PEERS_AT_ONCE, PROMPT_ROUND)
        self._log_locks: dict[str, threading.Lock] = {}  # one audit of a log at a time, whichever URL serves it
        self._adopted_logs: set[str] = set()  # logs whose records written under their origin alone are taken in
        self._log_locks_lock = threading.Lock()
        self._reexecuting = threading.Lock()  # re-executions one at a time, as when peers were audited in turn
        self._retentions: dict[str, tuple[float, float]] = {}  # url -> (retention, asked again after)
        self.on_disagreement: Any = None  # set on a chain with disputes: (receipt, log index, entry) -> None
        super().__init__("audit")

    def start(self) -> Auditor:
        self.retention.start()
        return super().start() if self.fraction > 0 else self

    def stop(self) -> None:
        super().stop()
        self.retention.stop()
        self._http.close()
        self.store.close()
        self.disclosure.close()

    def public_info(self) -> dict[str, Any]:
        """What /v1/info says about this node's audits: its sample's fraction and seed commitment, and how long
        it keeps auditable requests' data for other auditors."""
        return {"fraction": self.fraction, "seed_commitment": "sha256:" + hashlib.sha256(self.seed).hexdigest(),
                "retention": self.node.config.audit_retention}  # fmt: skip

    def is_sampled(self, origin: str, index: int) -> bool:
        return sampled(self.seed, origin, index, self.fraction)

    def _run(self) -> None:
        # Peers are audited side by side, each round in a thread of its own: one that answers slowly holds up its
        # own audit for its round, no other; rounds that run long move to a lane of their own (audit_lanes.py).
        rounds: list[threading.Thread] = []
        while not self._stop.wait(self.interval):
            rounds = [thread for thread in rounds if thread.is_alive()]
            peers = {peer.url: peer for peer in self.node.discovery.peers()}
            for url in self._lanes.order(peers):
                if self._lanes.start(url, time.monotonic()):
                    thread = threading.Thread(target=self._audit_in_turn, args=(url, peers[url].node),
                                              name="audit-peer", daemon=True)  # fmt: skip
                    try:
                        thread.start()
                    except RuntimeError:  # no thread to be had now: the round is not running
                        self._lanes.finish(url, time.monotonic())
                        continue
                    rounds.append(thread)
        for thread in rounds:  # asked to stop: each round stops at its next step
            thread.join()

    def _audit_in_turn(self, url: str, log_key: VerifyingKey) -> None:
        try:
            with self._log_locks_lock:
                log_lock = self._log_locks.setdefault(log_key.vkey, threading.Lock())
            with log_lock:  # two URLs claiming one log take turns: neither can keep the other from its audit
                if not self._stop.is_set():
                    self.audit_peer(url, log_key)
        except Stopped:
            pass  # this node is shutting down: what was not examined stays for its next start
        except Exception as exc:  # whatever a peer answers, the auditor keeps going
            events.warning("audit of %s stopped this round: %s", url, exc)
        finally:
            self._lanes.finish(url, time.monotonic())

    def audit_peer(self, url: str, log_key: VerifyingKey) -> int:
        """Examine the peer's sampled entries: first those it refused before, then the new ones up to its signed
        checkpoint, up to 64 in one request. Return how many were examined this round."""
        origin, log = log_key.name, self._adopted(log_key)
        retention = self._retention(url)
        signed, tiles = self._view(url, log_key, retention)
        size = signed.checkpoint.size
        over_cap = self.store.open_refusal_count(log) >= MAX_OPEN_REFUSALS
        round_ = _Round(url, log_key, signed, signed.to_text(), tiles, retention, time.monotonic() + ROUND_TIME,
                        over_cap)  # fmt: skip
        examined = 0
        retries = self.store.open_refusals(log, RETRIES_PER_ROUND, size)
        for n in range(0, len(retries), MAX_ENTRIES_PER_REQUEST):
            if self._stop.is_set():
                return examined
            chunk = retries[n : n + MAX_ENTRIES_PER_REQUEST]
            examined += len(chunk)
            if not self._examine_all(round_, chunk):
                break  # not answering at all: no more of the old now, but its new entries are still recorded
        start = scanned = self.store.audited_size(log)
        sample = []
        for index in range(start, min(size, start + MAX_ENTRIES_PER_ROUND)):
            if examined + len(sample) >= MAX_SAMPLED_PER_ROUND:
                break
            if self.is_sampled(origin, index):
                sample.append(index)
            scanned = index + 1
        # Past what was examined or recorded, never further: an error here leaves the chunk for next round.
        position = sample[0] if sample else scanned
        try:
            for n in range(0, len(sample), MAX_ENTRIES_PER_REQUEST):
                if self._stop.is_set():
                    break
                chunk = sample[n : n + MAX_ENTRIES_PER_REQUEST]
                answered = self._examine_all(round_, chunk)
                examined += len(chunk)
                rest = sample[n + MAX_ENTRIES_PER_REQUEST :]
                position = rest[0] if rest else scanned
                if not answered:
                    break  # recorded as refused; a peer that does not answer is not hammered
        finally:
            self.store.set_audited(log, position)
        return examined

    def _view(self, url: str, log_key: VerifyingKey, retention: float) -> tuple[SignedCheckpoint, TileLog]:
        """The checkpoint this round holds the peer's log to: the newest of the one it serves now, the one this
        node's witness last cosigned and the one the last round held it to, once the others are shown to be
        prefixes of it from the peer's own tiles. So every entry this auditor examines is in the one history its
        witness vouches for: a proof under a checkpoint of another history (a fork shown to auditors only) does
        not count. A proven fork is recorded, and the round stops. A checkpoint the peer does not serve, or that
        its tiles do not tie to the others, is passed over: the round holds the log to the held ones, tied, else
        to the witness's alone (the one clients see cosigned), and whatever it cannot prove there is refused; so
        neither withholding /checkpoint nor hiding the tiles stops an audit or hides a fork."""
        origin, log = log_key.name, log_key.vkey
        policy = TrustPolicy(log_key)
        view, witnessed = (self._trusted(policy, known) for known in (self.store.view(log),
                                                                     self.node.witness.cosigned(origin)))  # fmt: skip
        held = [c for c in (view, witnessed) if c is not None]
        served = None
        try:
            status, body = bounded_get(self._http, f"{url}/checkpoint", CHECKPOINT_BYTES, FETCH_DEADLINE,
                                       stop=self._stop)  # fmt: skip
            if status != 200 or body is None:
                raise InvalidInput(f"answered {status}" if body is not None else "an answer too long")
            served = SignedCheckpoint.parse(body, f"checkpoint of {url}")
            policy.check(served)
        except (httpx.HTTPError, VerimlError) as exc:
            if not held:
                raise
            events.warning(json.dumps({"event": "audit-no-checkpoint", "subject": log_key.key_id,
                                       "detail": str(exc)[:300]}))  # fmt: skip
            served = None
        for candidates in ([c for c in (served, *held) if c is not None], held):
            tied = self._tie(url, log_key, candidates)
            if tied is not None:
                newest, tiles = tied
                self.store.set_view(log, newest)
                if served is not None and newest is served:
                    # Only a checkpoint tied to the history held, and the newest, says when entries were not yet
                    # in the log: a stale or replayed one would hold an honest peer to too early a window.
                    now = time.time()
                    window = min(max(retention, MIN_RETENTION), MAX_SIGHTING_AGE)
                    self.store.sighted(log, served.checkpoint.size, now, now - window - CLOCK_SLACK)
                return newest, tiles
        # The held ones do not tie either: hold the log to what clients rely on, and keep the view as it was.
        chosen = witnessed if witnessed is not None else held[0]
        return chosen, TileLog(url, chosen.checkpoint.size, http=self._http)

    @staticmethod
    def _trusted(policy: TrustPolicy, checkpoint: SignedCheckpoint | None) -> SignedCheckpoint | None:
        if checkpoint is None:
            return None
        try:
            policy.check(checkpoint)
        except VerificationFailed:
            return None  # the witness follows another key under this name: not this peer's history
        return checkpoint

    def _tie(self, url: str, log_key: VerifyingKey,
             candidates: list[SignedCheckpoint]) -> tuple[SignedCheckpoint, TileLog] | None:  # fmt: skip
        """The newest of `candidates` and its tiles, when every other one is shown to be its prefix; None when the
        tiles prove nothing about one of them. Every pair is judged, so a fork is never passed over for a tile
        that failed first; a proven fork is recorded and raised."""
        newest = max(candidates, key=lambda c: c.checkpoint.size)
        tiles = TileLog(url, newest.checkpoint.size, http=self._http)
        unproven = None
        for older in candidates:
            try:
                _check_extends(older, newest, tiles)
            except VerificationFailed as exc:
                self.store.forked(log_key.vkey, log_key.vkey, older.to_text(), newest.to_text(), str(exc))
                events.warning(json.dumps({"event": "audit-fork", "subject": log_key.key_id,
                                           "sizes": [older.checkpoint.size, newest.checkpoint.size]}))  # fmt: skip
                raise
            except _TilesProveNothing as exc:
                unproven = exc
        if unproven is None:
            return newest, tiles
        events.warning(json.dumps({"event": "audit-unproven-checkpoint", "subject": log_key.key_id,
                                   "detail": str(unproven)[:300]}))  # fmt: skip
        return None

    def _retention(self, url: str) -> float:
        """How long the peer says it keeps auditable data (its /v1/info), asked once a minute."""
        known = self._retentions.get(url)
        if known is not None and known[1] > time.monotonic():
            return known[0]
        try:
            _, body = bounded_get(self._http, f"{url}/v1/info", CHECKPOINT_BYTES, FETCH_DEADLINE, stop=self._stop)
            retention = float(parse_json(body or b"", "info")["audit"]["retention"])
            if not math.isfinite(retention) or retention < 0:  # NaN would pass every deletion
                raise ValueError(f"retention {retention}")
        except Stopped:
            raise
        except Exception:  # a peer that does not say keeps nothing past the moment: only early deletion shows
            retention = 0.0
        self._retentions[url] = (retention, time.monotonic() + RETENTION_TTL)
        return retention

    def _refuse(self, round_: _Round, index: int, reason: str) -> None:
        self.store.refused(round_.log_key.vkey, round_.log_key.vkey, index, reason, round_.checkpoint,
                           round_.over_cap)  # fmt: skip
        events.warning(json.dumps({"event": "audit-refused", "subject": round_.log_key.key_id, "index": index,
                                   "reason": reason}))  # fmt: skip

    def _examine_all(self, round_: _Round, indices: list[int]) -> bool:
        """Ask for sampled entries in one signed auditor request and examine each answer; an entry not served is
        recorded as refused. False only when the peer did not answer at all."""
        path = "/v1/log/entries?indices=" + ",".join(str(index) for index in indices)
        now = time.monotonic()
        next_request = self._next_request.get(round_.url, 0.0)
        if next_request > now:
            self._stop.wait(next_request - now)
        self._next_request[round_.url] = max(now, next_request) + len(indices) / PACE
        left = round_.ends - time.monotonic()
        if left <= 0:  # however slowly the peer answers, its round ends after ROUND_TIME
            for index in indices:
                self._refuse(round_, index, f"unanswered within the round's {ROUND_TIME:.0f} s")
            return False
        headers = sign_request(self.node.key, "GET", path, round_.log_key)
        try:
            status, content = bounded_get(self._http, round_.url + path, MAX_ANSWER_BYTES,
                                          min(FETCH_DEADLINE, left), headers, self._stop)  # fmt: skip
        except httpx.HTTPError as exc:
            for index in indices:
                self._refuse(round_, index, f"unanswered ({type(exc).__name__})")
            return False
        if content is None and len(indices) > 1:
            # Too large to hold at once: ask again in halves, down to single entries; every entry is recorded.
            half = len(indices) // 2
            first = self._examine_all(round_, indices[:half])
            return self._examine_all(round_, indices[half:]) and first
        answers: list[Any] | str
        if content is None:
            answers = f"an answer over {MAX_ANSWER_BYTES} bytes for one entry"
        elif status != 200:
            answers = f"answered {status}: {content[:300].decode('utf-8', 'replace')}"
        else:
            try:
                if content.count(b"[") + content.count(b"{") > MAX_ANSWER_CONTAINERS:  # before parsing: memory
                    raise ValueError(f"more than {MAX_ANSWER_CONTAINERS} JSON arrays and objects")
                answers = parse_json(content, "the answer")["entries"]  # depth-limited
                if not isinstance(answers, list) or len(answers) != len(indices):
                    raise ValueError(f"{len(indices)} entries asked for, {len(answers)} served")
            except (VerimlError, ValueError, KeyError, TypeError) as exc:
                answers = f"no valid answer: {str(exc)[:300]}"
        for n, index in enumerate(indices):
            answer = answers if isinstance(answers, str) else answers[n]
            if isinstance(answer, dict) and "status" in answer and "receipt" not in answer:
                answer = f"answered {str(answer.get('status'))[:10]}: {str(answer.get('detail'))[:300]}"
            if isinstance(answer, str):
                self._refuse(round_, index, answer)
                continue
            try:
                self._examine(round_, index, answer)
            except sqlite3.Error:
                raise  # this node's own store: not the peer's doing
            except Exception as exc:
                # Whatever the peer served that this auditor could not finish examining is its refusal (the
                # runtime's own errors on a planted request included): an answer that stopped the round would
                # hold the audited size before this entry forever.
                reason = f"an answer that could not be examined: {type(exc).__name__}: {str(exc)[:300]}"
                self._refuse(round_, index, reason)
        return True

    def _examine(self, round_: _Round, index: int, entry: Any) -> None:
        """Check one served entry's proof, re-execute it, record what was found."""
        log = round_.log_key.vkey
        checkpoint = round_.signed.checkpoint
        try:
            if not isinstance(entry, dict) or "receipt" not in entry:
                raise InvalidInput("no receipt served")
            if time.monotonic() > round_.ends:  # the tiles are read within the round's time, as the answers are
                raise InvalidInput(f"its tiles were not read within the round's {ROUND_TIME:.0f} s")
            receipt = parse_signed_receipt(entry["receipt"]).verified()  # the leaf binds the body only
            # The proof comes from the peer's tiles under the round's checkpoint, not from the peer's answer: a
            # valid entry at another index, or under a checkpoint of another history, proves nothing about this one.
            leaf = merkle.leaf_hash(ReceiptLeaf.of(receipt).to_bytes())
            try:
                path = round_.tiles.inclusion_proof(index)
            except VerimlError as exc:  # missing, slow or the wrong length: nothing said about the receipt
                raise InvalidInput(f"its tiles could not be read: {exc}") from exc
            try:
                merkle.verify_inclusion(index, checkpoint.size, leaf, path, checkpoint.root)
            except VerificationFailed as exc:
                raise InvalidInput(f"the receipt served is not entry {index} of the checkpoint of size "
                                   f"{checkpoint.size}") from exc  # fmt: skip
        except (VerimlError, ValueError, KeyError) as exc:
            self._refuse(round_, index, f"no valid entry: {exc}")
            return
        if receipt.body.privacy == "private":
            self.store.unattestable(log, index, "private")
            return
        if entry.get("data") == "deleted":
            # Deleting data before auditors could ask for it is refusing them: the window is the longer of the
            # node's stated one and the network's minimum.
            # The window starts when the entry was logged. Its receipt's date is the peer's word; a peer that
            # backdates it is held to the last time this auditor saw the log without the entry.
            dated = _timestamp_seconds(receipt.body.timestamp)
            absent = self.store.absent_at(log, index)
            logged = dated if absent is None else max(dated, absent - CLOCK_SLACK)
            kept_until = logged + max(round_.retention, MIN_RETENTION)
            span = self.store.refusal_span(log, index)
            if kept_until > time.time() + 5:
                backdated = f" (not in the log at {absent:.0f}, though dated {dated:.0f})" if logged > dated else ""
                self._refuse(
                    round_, index, f"data deleted before the {round_.retention:.0f} s retention window ended{backdated}"
                )
            elif span is not None and span[1] < kept_until and span[1] - span[0] >= REFUSAL_SPAN:
                # Withheld while it had to be kept, asked again and again, deleted once it need not be: the refusal
                # stands. (A refusal that did not last, or was last asked after the window, may be this auditor's
                # own trouble: it does not.)
                self.store.make_final(log, index, f"withheld while its retention window was open (refused "
                                                     f"from {span[0]:.0f} to {span[1]:.0f}), then deleted")  # fmt: skip
            else:
                self.store.unattestable(log, index, "deleted")
            return
        try:
            manifest = self.node.pin(str(receipt.body.manifest))
        except VerimlError as exc:  # the node ran the model, so it can serve it: else the entry is not examinable
            self._refuse(round_, index, f"model {receipt.body.manifest} not obtainable: {exc}")
            return
        try:
            inputs = tensors_from_json(entry.get("inputs"), "disclosed inputs")
        except InvalidInput as exc:
            self._refuse(round_, index, f"data withheld or wrong ({entry.get('data')!r}): {exc}")
            return
        try:
            check_reexecution(self.node.config, manifest, inputs)
        except InvalidInput:
            # Over this auditor's limits (docs/limits.md): not re-executed, so a peer cannot make its auditors
            # do more than its callers could; recorded, not counted against the peer.
            self.store.unattestable(log, index, "over-limits")
            return
        try:
            waiting = time.monotonic()
            with self._reexecuting:
                round_.ends += time.monotonic() - waiting
                attestation = self.node.service.attest(
                    manifest,
                    receipt,
                    parse_salt(entry.get("salt"), "disclosed salt"),
                    inputs,
                    tensors_from_json(entry.get("outputs"), "disclosed outputs"),
                )
        except RunTooLong:
            # Past this auditor's own time limit: not the peer's refusal (as for entries over its other limits).
            self.store.unattestable(log, index, "over-limits")
            return
        except InvalidInput as exc:
            self._refuse(round_, index, f"data withheld or wrong ({entry.get('data')!r}): {exc}")
            return
        self.store.attested(log, index, attestation, entry["receipt"])
        if attestation.body.verdict == "disagree":
            # Not the detail: for a generation it names tokens of the output, and request data stays out of logs.
            events.warning(json.dumps({"event": "evidence", "subject": receipt.body.node.key_id, "index": index}))
            if self.on_disagreement is not None:
                try:
                    self.on_disagreement(receipt, index, entry)
                except Exception:  # recorded as a disagreement already: its dispute is this node's own business
                    events.exception("audit: the disagreement on entry %d could not be handed on", index)

    def audited_size(self, log_key: VerifyingKey) -> int:
        """How far this auditor has audited the log of `log_key` (its origin and its key)."""
        return self.store.audited_size(log_key.vkey)

    def _adopted(self, log_key: VerifyingKey) -> str:
        """The store's name for a peer's log: its verifier key text, so two peers naming one origin (with static
        peers nothing stops it) are two logs, and neither's records move the other's audit. A store written when
        logs went by origin alone gives its records to the log of that origin, once, if no other key claims it."""
        log = log_key.vkey
        if log not in self._adopted_logs:
            claims = {peer.node.vkey for peer in self.node.discovery.peers() if peer.node.name == log_key.name}
            if claims <= {log}:  # two keys claiming the origin: neither gets the old records (both start afresh)
                self.store.adopt(log_key.name, log)
            self._adopted_logs.add(log)
        return log
