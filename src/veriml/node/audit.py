"""Audit: each node samples a fraction of its peers' new log entries, re-executes them and signs attestations.
A disagreement is kept as evidence: the peer's own signed receipt beside this node's signed attestation.

The sample is drawn with this node's operating-system randomness, which the audited node cannot predict, so a
node that cheats on c entries escapes with probability (1 - fraction)^c."""

from __future__ import annotations

import json
import logging
import random
import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from veriml.background import BackgroundJob
from veriml.codec import canonical_json, tensors_from_json
from veriml.receipts import ReceiptLeaf, SignedAttestation, parse_salt, parse_signed_receipt
from veriml.tlog import SignedCheckpoint, TlogProof, TrustPolicy

if TYPE_CHECKING:
    from veriml.node.node import Node

events = logging.getLogger("veriml.node")
MAX_ENTRIES_PER_ROUND = 10_000

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
"""


class AuditStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def audited_size(self, origin: str) -> int:
        with self._lock:
            row = self._db.execute("SELECT size FROM audited WHERE origin = ?", (origin,)).fetchone()
        return 0 if row is None else row[0]

    def record(self, origin: str, size: int, found: list[tuple[int, SignedAttestation, dict[str, Any]]]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for index, attestation, receipt in found:
                    self._db.execute(
                        "INSERT INTO attestations (subject, log_index, verdict, attestation, receipt)"
                        " VALUES (?, ?, ?, ?, ?)",
                        (
                            attestation.body.subject.vkey,
                            index,
                            attestation.body.verdict,
                            canonical_json(attestation.to_json()).decode(),
                            json.dumps(receipt),
                        ),
                    )
                self._db.execute("INSERT OR REPLACE INTO audited (origin, size) VALUES (?, ?)", (origin, size))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

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


class Auditor(BackgroundJob):
    def __init__(self, node: Node, fraction: float, interval: float) -> None:
        self.node = node
        self.fraction = fraction
        self.interval = interval
        self.store = AuditStore(node.home.root / "audit" / "audit.sqlite")
        self._random = random.SystemRandom()
        super().__init__("audit")

    def start(self) -> Auditor:
        return super().start() if self.fraction > 0 else self

    def stop(self) -> None:
        super().stop()
        self.store.close()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for peer in self.node.discovery.peers():
                try:
                    self.audit_peer(peer.url, peer.node)
                except Exception as exc:  # whatever a peer answers, the auditor keeps going
                    events.warning("audit of %s stopped this round: %s", peer.url, exc)

    def audit_peer(self, url: str, log_key: Any) -> int:
        """Audit the entries a peer logged since the last audit; return how many were re-executed."""
        origin = log_key.name
        checkpoint = SignedCheckpoint.parse(httpx.get(f"{url}/checkpoint", timeout=10).text, f"checkpoint of {url}")
        policy = TrustPolicy(log_key)
        policy.check(checkpoint)
        start = self.audited_size(origin)
        end = min(checkpoint.checkpoint.size, start + MAX_ENTRIES_PER_ROUND)  # a huge claimed size cannot stall us
        found = []
        for index in range(start, end):
            if self._stop.is_set():
                break
            if self._random.random() >= self.fraction:
                continue
            entry = httpx.get(f"{url}/v1/log/entries/{index}", timeout=30).json()
            if not isinstance(entry, dict) or not isinstance(entry.get("proof"), str):
                # Every entry below a signed checkpoint has a proof; a peer that will not give one is not
                # skipped past: the same index is sampled again next round.
                end = index
                break
            receipt = parse_signed_receipt(entry["receipt"])
            TlogProof.parse(entry["proof"]).verify(ReceiptLeaf.of(receipt).to_bytes(), policy)
            manifest = self.node.pin(str(receipt.body.manifest))
            attestation = self.node.service.attest(
                manifest,
                receipt,
                parse_salt(entry.get("salt"), "entry salt"),
                tensors_from_json(entry["inputs"]),
                tensors_from_json(entry["outputs"]),
            )
            found.append((index, attestation, entry["receipt"]))
            if attestation.body.verdict == "disagree":
                events.warning(json.dumps({"event": "evidence", "subject": receipt.body.node.key_id, "index": index,
                                           "detail": attestation.body.detail}))  # fmt: skip
        self.store.record(origin, end, found)
        return len(found)

    def audited_size(self, origin: str) -> int:
        return self.store.audited_size(origin)
