"""Anchoring a node's log on chain on a fixed cadence: the latest signed checkpoint (size, root) with an RFC 9162
consistency proof from the previous anchor, which the contract checks. One transaction per cadence at most, and
none when the log has not grown: chain cost follows time and node count, never inference count."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from veriml.background import BackgroundJob
from veriml.chain.contracts import Contracts
from veriml.errors import VerimlError
from veriml.tlog import SignedCheckpoint

events = logging.getLogger("veriml.chain")


@dataclass(frozen=True)
class AnchorSource:
    """Where the checkpoints and proofs come from: a node's own log, or a remote log read through its tiles."""

    latest: Callable[[], SignedCheckpoint | None]
    consistency_proof: Callable[[int, int], Sequence[bytes]]


def anchor_once(
    contracts: Contracts, account: Any, source: AnchorSource, gap: int | None = None
) -> tuple[int, int] | None:
    """Anchor the latest checkpoint if it is larger than the last anchor: (old size, new size). When the log has
    not grown, anchor the same tree again once half of the contract's max_anchor_gap has passed since the last
    anchor (a heartbeat: a node that misses the gap can be reported stale); None when nothing was sent."""
    latest = source.latest()
    node = contracts.node(account.address)
    size = node.anchored_size if latest is None else latest.checkpoint.size
    if size > node.anchored_size:
        assert latest is not None
        proof = source.consistency_proof(node.anchored_size, size) if node.anchored_size else []
        contracts.anchor(account, size, latest.checkpoint.root, proof)
        return node.anchored_size, size
    gap = contracts.max_anchor_gap() if gap is None else gap
    now = int(contracts.chain.w3.eth.get_block("latest")["timestamp"])
    if size == node.anchored_size and now - node.anchored_at >= gap // 2:
        contracts.anchor(account, node.anchored_size, node.anchored_root, [])
        return node.anchored_size, node.anchored_size
    return None


class Anchorer(BackgroundJob):
    """A background thread that anchors every `interval` seconds; a failed round is logged and retried next time."""

    def __init__(self, contracts: Contracts, account: Any, source: AnchorSource, interval: float) -> None:
        self.contracts = contracts
        self.account = account
        self.source = source
        self.interval = interval
        self.anchored: tuple[int, int] | None = None
        super().__init__("chain anchoring")

    def anchor_now(self) -> tuple[int, int] | None:
        done = anchor_once(self.contracts, self.account, self.source)
        if done is not None:
            self.anchored = done
            events.info("anchored tree size %d (from %d)", done[1], done[0])
        return done

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.anchor_now()
            except VerimlError as exc:
                events.warning("anchoring failed, retrying in %.1f s: %s", self.interval, exc)
            except Exception:  # a bad round must not end anchoring for the node's life
                events.exception("anchoring failed, retrying in %.1f s", self.interval)
