"""Who may read a logged request's inputs, outputs and salt (issue 11), every disclosure recorded, and their deletion
after the node's retention window.

Anyone reads a log entry's signed receipt and its tlog-proof. The data behind an `auditable` receipt goes only to
an authenticated auditor (veriml.node.auditor_auth) or to its own client (who proves it by sending the salt it
chose); a `public` receipt's data goes to anyone; a `private` request's data is not kept at all. After
`audit_retention` seconds the data of an auditable receipt is deleted from the log's store; the entry, its leaf
and every proof stay as they were, so bundles verify exactly as before.
"""

from __future__ import annotations

import hmac
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from veriml.background import BackgroundJob
from veriml.codec import canonical_json, parse_json, tensors_from_json
from veriml.errors import InvalidInput, NotFound, PermissionDenied, VerimlError
from veriml.hub import Registry
from veriml.identity import VerifyingKey
from veriml.node.auditor_auth import AuditorGate, is_signed
from veriml.receipts import Bundle, parse_signed_receipt
from veriml.receipts.commitment import parse_salt
from veriml.tlog import Log

events = logging.getLogger("veriml.node")
SALT_HEADER = "x-veriml-salt"  # the client's own salt: proves it is the client that made the request
_DATA = ("salt", "inputs", "outputs")
SWEEP_CHUNK = 1000
MAX_ENTRIES_PER_REQUEST = 64  # one auditor request's entries: a round's sample of a busy peer in a few requests

_SCHEMA = """
CREATE TABLE IF NOT EXISTS disclosures (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,             -- when (UTC)
    auditor TEXT NOT NULL,        -- the auditor's verifier key
    log_index INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS state (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


def _timestamp_seconds(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


class Disclosure:
    def __init__(self, path: Path, log: Log, registry: Registry, gate: AuditorGate, retention: float) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self.log, self.registry, self.gate, self.retention = log, registry, gate, retention

    def close(self) -> None:
        self._db.close()

    # ---- reads -----------------------------------------------------------------------------------------

    def _stored(self, index: int) -> dict[str, Any]:
        if not 0 <= index < 1 << 48:
            raise InvalidInput(f"log index {index}: must be from 0 to 2^48 - 1")
        stored = parse_json(self.log.entry(index)[1], "stored receipt")
        if not isinstance(stored, dict) or "receipt" not in stored:
            raise NotFound(f"log entry {index}: no receipt is kept beside it")
        return stored

    def _auditor(self, method: str, path: str, headers: Mapping[str, str], entries: int = 1) -> VerifyingKey | None:
        """The authenticated auditor of a signed request (PermissionDenied if its signature is not good), None for
        an unsigned one."""
        return self.gate.authenticate(method, path, headers, entries) if is_signed(headers) else None

    def _release(self, stored: dict[str, Any], auditor: VerifyingKey | None, headers: Mapping[str, str]) -> str:
        """Whether this caller may have the entry's data: 'public', 'client', 'disclosed' (to an auditor, to be
        recorded), or why not: 'withheld', 'private', 'deleted'."""
        privacy = stored["receipt"].get("body", {}).get("privacy", "auditable")
        if privacy == "private":
            return "private"
        if "salt" not in stored:
            return "deleted"
        if privacy == "public":
            return "public"
        given = headers.get(SALT_HEADER)
        if given is not None and hmac.compare_digest(given.encode("ascii", "replace"), stored["salt"].encode()):
            return "client"
        return "withheld" if auditor is None else "disclosed"

    def _record(self, auditor: VerifyingKey, indices: list[int]) -> None:
        at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany("INSERT INTO disclosures (at, auditor, log_index) VALUES (?, ?, ?)",
                                     [(at, auditor.vkey, index) for index in indices])  # fmt: skip
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _answer(self, index: int, auditor: VerifyingKey | None, headers: Mapping[str, str],
                stored: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
        """What a caller is answered for one entry (its disclosure not yet recorded)."""
        stored = self._stored(index) if stored is None else stored
        data = self._release(stored, auditor, headers)
        try:
            proof = self.log.prove(index).to_text()
        except NotFound:
            proof = None
        answer = {"index": index, "receipt": stored["receipt"], "proof": proof, "data": data}
        if data in ("public", "client", "disclosed"):
            answer.update({k: stored[k] for k in _DATA})
        return answer

    def entry(self, index: int, method: str, path: str, headers: Mapping[str, str]) -> dict[str, Any]:
        """The signed receipt at `index` and its tlog-proof once a checkpoint covers it; its salt, inputs and
        outputs only for a caller allowed them (`data` says which case applies)."""
        stored = self._stored(index)  # an entry that is not there is a 404 before any signature is looked at
        auditor = self._auditor(method, path, headers)
        answer = self._answer(index, auditor, headers, stored)
        if auditor is not None and answer["data"] == "disclosed":
            self._record(auditor, [index])
        return answer

    def entries(self, indices: list[int], method: str, path: str, headers: Mapping[str, str]) -> list[dict[str, Any]]:
        """`entry` for several indices under one signed auditor request (a disclosure each, counted as such by the
        rate limit); an entry that cannot be answered is a problem in its place: its index, status and detail."""
        if not 1 <= len(indices) <= MAX_ENTRIES_PER_REQUEST or len(set(indices)) != len(indices):
            raise InvalidInput(f"log entries: 1 to {MAX_ENTRIES_PER_REQUEST} distinct indices per request")
        auditor = self._auditor(method, path, headers, len(indices))
        if auditor is None:
            # Sixty-four entries and proofs for one request: only for auditors, whom the rate limit bounds.
            raise PermissionDenied("log entries: several at once only for a signed auditor request; others ask "
                                   "/v1/log/entries/{index} for each")  # fmt: skip
        answers: list[dict[str, Any]] = []
        for index in indices:
            try:
                answers.append(self._answer(index, auditor, headers))
            except VerimlError as exc:
                answers.append({"index": index, "status": exc.http_status, "detail": str(exc)})
        disclosed = [answer["index"] for answer in answers if answer.get("data") == "disclosed"]
        if disclosed:
            self._record(auditor, disclosed)
        return answers

    def bundle(self, index: int, method: str, path: str, headers: Mapping[str, str]) -> Bundle:
        stored = self._stored(index)
        auditor = self._auditor(method, path, headers)
        data = self._release(stored, auditor, headers)
        if data == "private":
            raise PermissionDenied(f"log entry {index}: a private request's inputs and outputs are not kept here")
        if data == "deleted":
            raise NotFound(f"log entry {index}: its inputs and outputs were deleted after the retention window")
        if data == "withheld":
            raise PermissionDenied(
                f"log entry {index}: the inputs and outputs of an auditable request go only to its client"
                f" (header X-Veriml-Salt) or an authenticated auditor"
            )
        if auditor is not None and data == "disclosed":
            self._record(auditor, [index])
        receipt = parse_signed_receipt(stored["receipt"])
        try:
            proof = self.log.prove(index).to_text()
        except NotFound:
            proof = None
        return Bundle(
            manifest=self.registry.by_id(receipt.body.manifest),
            receipt=receipt,
            salt=parse_salt(stored["salt"], "stored salt"),
            inputs=tensors_from_json(stored["inputs"], "stored inputs"),
            outputs=tensors_from_json(stored["outputs"], "stored outputs"),
            log_proof=proof,
        )

    def disclosures(self, limit: int = 100) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT at, auditor, log_index FROM disclosures ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
        return [{"at": at, "auditor": auditor, "log_index": index} for at, auditor, index in rows]

    # ---- retention -------------------------------------------------------------------------------------

    def sweep(self, now: float | None = None) -> int:
        """Delete the data of auditable receipts older than the retention window; return how many entries
        were rewritten. Entries are scanned in log order from where the last sweep stopped."""
        cutoff = (time.time() if now is None else now) - self.retention
        with self._lock:
            row = self._db.execute("SELECT value FROM state WHERE name = 'swept'").fetchone()
        start, deleted = (0 if row is None else row[0]), 0
        deleted_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        while True:
            end = min(self.log.sequenced_size, start + SWEEP_CHUNK)
            rewrites, position = [], start
            for index in range(start, end):
                stored = json.loads(self.log.entry(index)[1])
                body = stored["receipt"]["body"]
                if "salt" in stored and body.get("privacy") == "auditable":
                    if _timestamp_seconds(body["timestamp"]) > cutoff:
                        break
                    kept = {"receipt": stored["receipt"], "deleted": deleted_at}
                    rewrites.append((index, canonical_json(kept)))
                position = index + 1
            if rewrites:
                self.log.replace_extras(rewrites)
                deleted += len(rewrites)
            with self._lock:
                self._db.execute("INSERT OR REPLACE INTO state VALUES ('swept', ?)", (position,))
            if position < end or end == start:
                return deleted
            start = end


class Retention(BackgroundJob):
    def __init__(self, disclosure: Disclosure) -> None:
        self.disclosure = disclosure
        self.interval = min(max(disclosure.retention / 4, 0.2), 60.0)
        super().__init__("retention")

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                deleted = self.disclosure.sweep()
            except Exception as exc:  # the next sweep tries again
                events.warning("retention sweep failed: %s", exc)
                continue
            if deleted:
                events.info(json.dumps({"event": "retention", "deleted": deleted}))
