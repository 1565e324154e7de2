"""Proof jobs: proving is slow and memory-bound, so `verify=proven` answers with the receipt at once and queues
a job; a small worker pool (one prover by default) works through the queue. Jobs are kept in SQLite, so queued
and interrupted work survives a restart. The queue is bounded: when `max_queued` jobs wait, a request for another
proof is refused (503) before its inference runs; one job per receipt; only the newest `kept` finished jobs stay.

The proving itself runs in worker processes, not threads: EZKL holds the GIL for a whole proof (measured: a
4.6 s proof stalled a ticking thread for 4.6 s), which would freeze the node's event loop — and a prover that
aborts takes down only its worker process."""

from __future__ import annotations

import ctypes
import json
import logging
import multiprocessing
import os
import signal
import sqlite3
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from veriml.codec import Digest, canonical_json
from veriml.errors import NotFound, Unavailable
from veriml.receipts import Bundle

if TYPE_CHECKING:
    from veriml.service import Service

events = logging.getLogger("veriml.node")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    receipt TEXT PRIMARY KEY,      -- the receipt id the proof is for
    bundle BLOB NOT NULL,          -- the bundle to prove (canonical JSON)
    status TEXT NOT NULL,          -- queued, running, done, failed
    zk_proof TEXT,                 -- the bundle's zk_proof slot once done
    error TEXT
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs(status);
"""


class ProofJobs:
    def __init__(
        self, path: Path, service: Service, workers: int = 1, max_queued: int = 16, kept: int = 10_000
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        # Work that was running when the node stopped is queued again.
        self._db.execute("UPDATE jobs SET status = 'queued' WHERE status = 'running'")
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._stop = False
        self.service = service
        self._workers = workers
        self.max_queued, self.kept = max_queued, kept
        self._reserved = 0  # requests holding a slot whose job is not queued yet
        self._pool = self._new_pool()
        self._threads = [threading.Thread(target=self._work, name=f"prover {n}", daemon=True) for n in range(workers)]

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn, not fork: the node has threads (log writer, event loop) that a fork would copy mid-flight.
        spawn = multiprocessing.get_context("spawn")
        return ProcessPoolExecutor(self._workers, mp_context=spawn, initializer=_die_with, initargs=(os.getpid(),))

    def start(self) -> ProofJobs:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop at once: a proof under way is abandoned and its job stays 'running', to be queued again when
        the node starts."""
        with self._wake:
            self._stop = True
            self._wake.notify_all()
        pool = self._pool
        # ProcessPoolExecutor (before 3.14) has no public way to end a busy worker; its process table is it.
        for process in list(getattr(pool, "_processes", {}).values()):
            process.terminate()
        for thread in self._threads:
            if thread.is_alive():
                thread.join()
        pool.shutdown(wait=True, cancel_futures=True)
        self._db.close()

    def _queued(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM jobs WHERE status = 'queued'").fetchone()[0]

    @contextmanager
    def slot(self) -> Iterator[None]:
        """A place in the queue, held while the inference to prove runs; Unavailable (503) when the queue is full,
        so a refused request costs no inference and leaves no receipt."""
        with self._lock:
            waiting = self._queued() + self._reserved
            if waiting >= self.max_queued:
                raise Unavailable(
                    f"proof queue: full ({waiting} jobs waiting, at most {self.max_queued}); retry when one is done"
                )
            self._reserved += 1
        try:
            yield
        finally:
            with self._lock:
                self._reserved -= 1

    def submit(self, bundle: Bundle) -> str:
        """Queue a proof of the bundle; the same receipt again is the same job."""
        receipt = str(bundle.receipt.id)
        with self._wake:
            self._db.execute(
                "INSERT OR IGNORE INTO jobs (receipt, bundle, status) VALUES (?, ?, 'queued')",
                (receipt, bundle.to_bytes()),
            )
            self._wake.notify()
        return receipt

    def status(self, receipt: Digest) -> dict[str, Any]:
        with self._lock:
            row = self._db.execute(
                "SELECT status, zk_proof, error FROM jobs WHERE receipt = ?", (str(receipt),)
            ).fetchone()
        if row is None:
            raise NotFound(f"proof for receipt {receipt}: no such job here")
        status, zk_proof, error = row
        return {"receipt": str(receipt), "status": status, "zk_proof": json.loads(zk_proof) if zk_proof else None,
                "error": error}  # fmt: skip

    def _next(self) -> tuple[str, bytes] | None:
        with self._wake:
            while not self._stop:
                row = self._db.execute("SELECT receipt, bundle FROM jobs WHERE status = 'queued' LIMIT 1").fetchone()
                if row is not None:
                    self._db.execute("UPDATE jobs SET status = 'running' WHERE receipt = ?", (row[0],))
                    return row[0], row[1]
                self._wake.wait(1.0)
        return None

    def _work(self) -> None:
        while (job := self._next()) is not None:
            receipt, data = job
            pool = self._pool
            try:
                proven = self.service.prove(Bundle.from_bytes(data), pool)  # checked before it is kept
                result = ("done", canonical_json(dict(proven.zk_proof or {})).decode(), None)
            except BrokenProcessPool:
                if self._stop:
                    return  # ended by stop(): the job stays 'running' and is queued again at the next start
                events.warning("prover process died proving %s; starting a new one", receipt)
                with self._lock:
                    if self._pool is pool:
                        self._pool = self._new_pool()
                result = ("failed", None, "the prover process died (out of memory?)")
            except Exception as exc:  # a failed proof is reported on the job, never kills the prover
                events.warning("proof for %s failed: %s", receipt, exc)
                result = ("failed", None, str(exc))
            with self._lock:
                self._db.execute(
                    "UPDATE jobs SET status = ?, zk_proof = ?, error = ? WHERE receipt = ?", (*result, receipt)
                )
                self._db.execute(  # finished jobs beyond the newest `kept` are dropped: the table stays bounded
                    "DELETE FROM jobs WHERE status IN ('done', 'failed') AND rowid NOT IN (SELECT rowid FROM jobs"
                    " WHERE status IN ('done', 'failed') ORDER BY rowid DESC LIMIT ?)",
                    (self.kept,),
                )


def _die_with(parent: int) -> None:
    """Prover worker initializer: a worker must not outlive its node, which a SIGKILL would otherwise leave
    orphaned mid-proof. Linux delivers SIGKILL to the worker when the thread that spawned it exits."""
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the node died before the line above took effect
        os._exit(1)
