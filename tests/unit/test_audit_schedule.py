"""How the auditor schedules its peers: side by side, one audit of a URL at a time, one audit of a log at a time,
so that no peer can keep another from its audit."""

from __future__ import annotations

import threading
import time
from types import MethodType, SimpleNamespace

from veriml.identity import SigningKey
from veriml.node.audit import Auditor

HONEST = SigningKey.generate("example.org/honest").public


def run_auditor(peers: list[SimpleNamespace], audit_peer, seconds: float) -> None:  # type: ignore[no-untyped-def]
    fake = SimpleNamespace(_stop=threading.Event(), interval=0.05, node=SimpleNamespace(
        discovery=SimpleNamespace(peers=lambda: peers)), _auditing=set(), _auditing_lock=threading.Lock(),
        _log_locks={})  # fmt: skip
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
