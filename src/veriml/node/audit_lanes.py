"""Which peers an auditor starts a round of, and when: peers whose rounds end promptly are never kept waiting by
peers whose rounds do not.

Rounds run side by side in two lanes. A peer starts in the prompt lane (`prompt_at_once` rounds at most). A round
still running after `prompt_round` seconds (a peer dripping its answers holds its round open up to the round's
limit) marks its peer slow, and moves to the slow lane (`slow_at_once` rounds) when there is room, freeing its
prompt place. A slow peer's next rounds start in the slow lane only, so a set of slow peers holds the prompt lane
at most once each, for one round; a round in the slow lane that ends promptly makes its peer prompt again. Among
peers that may start, the one whose last round ended longest ago goes first, so a quick peer cannot keep taking a
place another is waiting for. Both lanes are bounded, so what the auditor holds at once is too.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(slots=True)
class _Running:
    started: float
    slow: bool  # in the slow lane


class AuditLanes:
    def __init__(self, prompt_at_once: int, slow_at_once: int, prompt_round: float) -> None:
        self.prompt_at_once, self.slow_at_once, self.prompt_round = prompt_at_once, slow_at_once, prompt_round
        self._running: dict[str, _Running] = {}
        self._slow: set[str] = set()  # peers whose last (or current) round was not prompt
        self._ended: dict[str, float] = {}  # peer -> when its last round ended
        self._lock = threading.Lock()

    def order(self, urls: Iterable[str]) -> list[str]:
        """`urls` (the peers now), those whose last round ended longest ago first (never audited first of all);
        stable otherwise. What is kept of peers no longer among them is let go."""
        urls = list(urls)
        with self._lock:
            for gone in (self._ended.keys() | self._slow) - set(urls) - self._running.keys():
                self._ended.pop(gone, None)
                self._slow.discard(gone)
            ended = dict(self._ended)
        return sorted(urls, key=lambda url: ended.get(url, float("-inf")))

    def start(self, url: str, now: float) -> bool:
        """Whether a round of `url` may start now; if so it is counted as running until `finish`."""
        with self._lock:
            if url in self._running:
                return False
            self._move_overdue(now)
            slow = url in self._slow
            if self._count(slow) >= (self.slow_at_once if slow else self.prompt_at_once):
                return False
            self._running[url] = _Running(now, slow)
            return True

    def finish(self, url: str, now: float) -> None:
        with self._lock:
            run = self._running.pop(url, None)
            if run is None:
                return
            self._ended[url] = now
            if now - run.started > self.prompt_round:
                self._slow.add(url)
            else:
                self._slow.discard(url)

    def running(self) -> Sequence[tuple[str, bool]]:
        """(peer, in the slow lane) for each round running."""
        with self._lock:
            return [(url, run.slow) for url, run in self._running.items()]

    def _move_overdue(self, now: float) -> None:
        for url, run in self._running.items():
            if not run.slow and now - run.started > self.prompt_round:
                self._slow.add(url)
                if self._count(True) < self.slow_at_once:
                    run.slow = True

    def _count(self, slow: bool) -> int:
        return sum(1 for run in self._running.values() if run.slow == slow)
