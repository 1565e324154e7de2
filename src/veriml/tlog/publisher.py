"""Checkpoints published on a fixed cadence: every `interval` seconds, if the tree grew, the latest signed
checkpoint (appends sign one per batch) is published and witness cosignatures are collected for it. Never one
witnessed checkpoint per batch: witnessing and anchoring cost then grows with time, not with traffic."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from veriml.background import BackgroundJob
from veriml.errors import VerimlError
from veriml.identity import VerifyingKey
from veriml.tlog.checkpoint import SignedCheckpoint
from veriml.tlog.log import Log, WitnessSubmit

DEFAULT_INTERVAL = 1.0
log_events = logging.getLogger("veriml.tlog")


class CheckpointPublisher(BackgroundJob):
    def __init__(
        self,
        log: Log,
        interval: float = DEFAULT_INTERVAL,
        witnesses: Sequence[tuple[VerifyingKey, WitnessSubmit]]
        | Callable[[], Sequence[tuple[VerifyingKey, WitnessSubmit]]] = (),
    ) -> None:
        self.log = log
        self.interval = interval
        # A list, or a function giving the witnesses known now (a node learns its peers as they come up).
        self.witnesses = witnesses if callable(witnesses) else list(witnesses)
        self.published = 0
        super().__init__(f"checkpoints {log.origin}")

    def publish_now(self) -> SignedCheckpoint | None:
        """One turn of the cadence: a new checkpoint if the log grew since the last one, else None."""
        latest = self.log.latest_published()
        if latest is not None and latest.checkpoint.size >= self.log.sequenced_size:
            return None
        signed = self.log.sign_checkpoint()
        witnesses = self.witnesses() if callable(self.witnesses) else self.witnesses
        if witnesses:
            signed, refusals = self.log.collect_cosignatures(signed, witnesses)
            for witness, reason in refusals.items():
                log_events.warning("witness %s did not cosign %s@%d: %s", witness, signed.checkpoint.origin,
                                   signed.checkpoint.size, reason)  # fmt: skip
        self.published += 1
        return signed

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.publish_now()
            except VerimlError as exc:  # a refused checkpoint (tampered storage) must be loud, not fatal
                log_events.error("checkpoint for %s not published: %s", self.log.origin, exc)
            except Exception:  # nor may anything a witness answers stop the cadence
                log_events.exception("checkpoint for %s: unexpected failure", self.log.origin)

    def __enter__(self) -> CheckpointPublisher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
