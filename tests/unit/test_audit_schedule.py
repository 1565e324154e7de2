"""How the auditor schedules its peers: side by side, one audit of a URL at a time, one audit of a log at a time,
slow rounds in a lane of their own, so that no peer can keep another from its audit."""

from __future__ import annotations

import threading
import time
from types import MethodType, SimpleNamespace

import pytest

from veriml.identity import SigningKey
from veriml.node import audit
from veriml.node.audit import Auditor
from veriml.node.audit_lanes import AuditLanes

HONEST = SigningKey.generate("example.org/honest").public


def run_auditor(peers: list[SimpleNamespace], audit_peer, seconds: float) -> None:  # type: ignore[no-untyped-def]
    fake = SimpleNamespace(_stop=threading.Event(), interval=0.05, node=SimpleNamespace(
        discovery=SimpleNamespace(peers=lambda: peers)), _log_locks_lock=threading.Lock(), _log_locks={},
        _lanes=AuditLanes(audit.MAX_PEERS_AT_ONCE, audit.SLOW_PEERS_AT_ONCE, audit.PROMPT_ROUND))  # fmt: skip
    fake.audit_peer = audit_peer
    fake._audit_in_turn = MethodType(Auditor._audit_in_turn, fake)
    runner = threading.Thread(target=Auditor._run, args=(fake,))
    runner.start()
    time.sleep(seconds)
    fake._stop.set()
    runner.join(10)
    assert not runner.is_alive()


def test_a_url_claiming_another_peers_key_does_not_keep_it_from_its_audit() -> None:
    """A URL listed first that claims the honest peer's key, and whose audits take all the time they may: the
    honest peer's own URL is audited all the same, and never at the same time as the other (one log, one audit)."""
    audited: list[str] = []
    running = threading.Semaphore(1)

    def audit_peer(url: str, log_key) -> None:  # type: ignore[no-untyped-def]
        assert running.acquire(blocking=False), "two audits of one log at once"
        try:
            audited.append(url)
            time.sleep(0.2 if url == "http://squatter" else 0.01)
        finally:
            running.release()

    peers = [SimpleNamespace(url="http://squatter", node=HONEST), SimpleNamespace(url="http://honest", node=HONEST)]
    run_auditor(peers, audit_peer, 1.5)
    assert audited.count("http://honest") >= 2 and audited.count("http://squatter") >= 2, audited


def test_a_slow_peer_holds_up_no_other() -> None:
    other = SigningKey.generate("example.org/other").public
    audited: list[str] = []

    def audit_peer(url: str, log_key) -> None:  # type: ignore[no-untyped-def]
        audited.append(url)
        time.sleep(2 if url == "http://slow" else 0.01)

    peers = [SimpleNamespace(url="http://slow", node=HONEST), SimpleNamespace(url="http://quick", node=other)]
    run_auditor(peers, audit_peer, 1.0)
    assert audited.count("http://slow") == 1 and audited.count("http://quick") >= 5, audited


def test_peers_whose_rounds_run_long_keep_no_prompt_peer_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Four peers hold every round open (1.5 s here; 180 s in the product), with two places for rounds side by side
    and two more for slow ones. The quick peer is audited round after round all the same: each slow peer holds a
    prompt place for one round at most, then runs in the slow lane. (With one pool of places, as before, the four
    took turns holding both, and the quick peer got a round every 1.5 s.)"""
    monkeypatch.setattr(audit, "MAX_PEERS_AT_ONCE", 2)
    monkeypatch.setattr(audit, "SLOW_PEERS_AT_ONCE", 2)
    monkeypatch.setattr(audit, "PROMPT_ROUND", 0.2)
    audited: list[str] = []

    def audit_peer(url: str, log_key) -> None:  # type: ignore[no-untyped-def]
        audited.append(url)
        time.sleep(1.5 if url.startswith("http://slow") else 0.01)

    slow = [SimpleNamespace(url=f"http://slow{n}", node=SigningKey.generate(f"slow{n}").public) for n in range(4)]
    peers = [*slow, SimpleNamespace(url="http://quick", node=HONEST)]
    run_auditor(peers, audit_peer, 4.0)
    assert audited.count("http://quick") >= 15, audited
    assert all(audited.count(peer.url) >= 2 for peer in slow), audited  # slow peers are audited all the same


def test_a_round_past_its_prompt_time_moves_to_the_slow_lane_when_there_is_room() -> None:
    lanes = AuditLanes(prompt_at_once=1, slow_at_once=1, prompt_round=10)
    assert lanes.start("a", 0) and not lanes.start("b", 1)  # the prompt lane is full
    assert lanes.start("b", 11)  # a ran past 10 s: moved to the slow lane, its place is b's
    assert sorted(lanes.running()) == [("a", True), ("b", False)]
    assert not lanes.start("c", 22)  # b is past 10 s too, but the slow lane is full: b keeps its place
    lanes.finish("b", 23)
    assert not lanes.start("b", 24)  # b is slow now: it waits for the slow lane
    assert lanes.start("c", 24)
    lanes.finish("a", 25)
    assert lanes.start("b", 26) and ("b", True) in lanes.running()


def test_a_slow_peer_whose_round_ends_promptly_is_prompt_again() -> None:
    lanes = AuditLanes(prompt_at_once=1, slow_at_once=1, prompt_round=10)
    assert lanes.start("a", 0)
    lanes.finish("a", 20)
    assert lanes.start("a", 21) and lanes.running() == [("a", True)]
    lanes.finish("a", 22)
    assert lanes.start("a", 23) and lanes.running() == [("a", False)]


def test_peers_whose_last_round_ended_longest_ago_go_first() -> None:
    lanes = AuditLanes(prompt_at_once=3, slow_at_once=1, prompt_round=10)
    for url in ("a", "b", "c"):
        assert lanes.start(url, 0)
    lanes.finish("b", 1)
    lanes.finish("a", 2)
    lanes.finish("c", 3)
    assert lanes.order(["a", "b", "c", "new"]) == ["new", "b", "a", "c"]
