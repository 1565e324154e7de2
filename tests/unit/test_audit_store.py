"""The audit store's bookkeeping of when each peer's log was seen, and of forks: what bounds an entry's age, and
how much a peer can make the store keep."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from veriml.node.audit import FORKS_KEPT, SIGHTING_GRAIN, AuditStore

ORIGIN = "example.org/log"


def test_absent_at_is_the_last_sighting_of_a_log_without_the_entry(tmp_path: Path) -> None:
    store = AuditStore(tmp_path / "audit.sqlite")
    store.sighted(ORIGIN, 10, 1000.0, 0.0)
    store.sighted(ORIGIN, 10, 1001.0, 0.0)  # the same size seen again: a later bound
    store.sighted(ORIGIN, 25, 1002.0, 0.0)
    assert store.absent_at(ORIGIN, 5) is None  # in the log at the first sighting: nothing bounds its age
    assert store.absent_at(ORIGIN, 10) == 1001.0
    assert store.absent_at(ORIGIN, 24) == 1001.0
    assert store.absent_at(ORIGIN, 25) == 1002.0
    assert store.absent_at("another/log", 25) is None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 40), st.floats(0, 3 * SIGHTING_GRAIN)), min_size=1, max_size=60))
def test_thinning_only_makes_bounds_earlier(tmp_path_factory, steps) -> None:  # type: ignore[no-untyped-def]
    """Sightings of a growing log, thinned as they come: for every entry, the bound kept is never later than the
    one every sighting would give (an honest peer is never held to more), and within one grain of it."""
    store = AuditStore(tmp_path_factory.mktemp("store") / "audit.sqlite")
    size, now, seen = 0, 0.0, []
    for grow, wait in steps:
        size, now = size + grow, now + wait
        store.sighted(ORIGIN, size, now, -1.0)
        seen.append((size, now))
    for index in range(size + 1):
        exact = max((t for s, t in seen if s <= index), default=None)
        kept = store.absent_at(ORIGIN, index)
        if exact is None:
            assert kept is None
        else:
            assert kept is not None and exact - SIGHTING_GRAIN <= kept <= exact


def test_old_sightings_go_but_the_largest_stays(tmp_path: Path) -> None:
    store = AuditStore(tmp_path / "audit.sqlite")
    store.sighted(ORIGIN, 10, 1000.0, 0.0)
    store.sighted(ORIGIN, 20, 5000.0, 0.0)
    store.sighted(ORIGIN, 20, 9000.0, 8000.0)  # a horizon past both first sightings
    assert store.absent_at(ORIGIN, 15) is None
    assert store.absent_at(ORIGIN, 20) == 9000.0


def test_a_peer_forking_every_round_fills_no_disk(tmp_path: Path) -> None:
    store = AuditStore(tmp_path / "audit.sqlite")
    for n in range(3 * FORKS_KEPT):
        store.forked(ORIGIN, "key", "held", f"other {n}", "detail")
    kept = [fork["other"] for fork in store.forks(limit=1000)]
    assert len(kept) == FORKS_KEPT
    first, newest = FORKS_KEPT // 2, 3 * FORKS_KEPT - FORKS_KEPT // 2
    assert set(kept) == {f"other {n}" for n in [*range(first), *range(newest, 3 * FORKS_KEPT)]}


def test_open_refusals_are_asked_below_the_round_size_and_dated(tmp_path: Path) -> None:
    store = AuditStore(tmp_path / "audit.sqlite")
    for index in (3, 70, 5):
        store.refused(ORIGIN, "key", index, "answered 500", "checkpoint")
    assert sorted(store.open_refusals(ORIGIN, 50, below=10)) == [3, 5]  # 70 is past what the round holds
    assert store.open_refusal_count(ORIGIN) == 3
    assert store.refusal_span(ORIGIN, 3) is not None and store.refusal_span(ORIGIN, 4) is None
    store.unattestable(ORIGIN, 3, "private")  # examined after all: the refusal is answered
    assert store.refusal_span(ORIGIN, 3) is None and store.open_refusal_count(ORIGIN) == 2
    store.make_final(ORIGIN, 5, "withheld, then deleted")  # stays open, never asked again
    assert store.open_refusals(ORIGIN, 50, below=100) == [70] and store.open_refusal_count(ORIGIN) == 2


def test_a_refusal_answered_and_refused_again_starts_anew(tmp_path: Path) -> None:
    store = AuditStore(tmp_path / "audit.sqlite")
    store.refused(ORIGIN, "key", 3, "answered 500", "checkpoint")
    first = store.refusal_span(ORIGIN, 3)
    store.unattestable(ORIGIN, 3, "private")
    store.refused(ORIGIN, "key", 3, "answered 500", "checkpoint")
    again = store.refusal_span(ORIGIN, 3)
    assert first is not None and again is not None and again[0] >= first[1]  # its span does not reach back


def test_refusals_past_the_cap_are_counted_not_kept(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    store = AuditStore(tmp_path / "audit.sqlite")
    store.refused(ORIGIN, "key", 1, "answered 500", "checkpoint")
    store.refused(ORIGIN, "key", 1, "answered 500", "checkpoint", over_cap=True)  # known: kept as it is
    for index in (2, 3):
        store.refused(ORIGIN, "key", index, "answered 500", "checkpoint", over_cap=True)
    assert store.open_refusal_count(ORIGIN) == 1
    assert [(r["subject"], r["refused"]) for r in store.refusals_over_cap()] == [("key", 2)]
    assert store.outcomes(ORIGIN) == {1: "refused", 2: "refused", 3: "refused"}


def test_records_written_by_origin_alone_go_to_the_first_log_of_that_origin_once(tmp_path: Path) -> None:
    """A store from before logs were named by their key: its records move, once, to the first log of their origin
    that is audited; a second key naming the same origin starts from nothing."""
    store = AuditStore(tmp_path / "audit.sqlite")
    store.set_audited(ORIGIN, 40)
    store.sighted(ORIGIN, 40, 1000.0, 0.0)
    store.refused(ORIGIN, "subject", 7, "answered 500", "checkpoint")
    first, second = f"{ORIGIN}+00000001+AAAA", f"{ORIGIN}+00000002+BBBB"
    store.adopt(ORIGIN, first)
    assert (store.audited_size(first), store.absent_at(first, 41), store.open_refusals(first, 10, 40)) == (
        40, 1000.0, [7],
    )  # fmt: skip
    assert store.audited_size(ORIGIN) == 0
    store.adopt(ORIGIN, second)
    assert (store.audited_size(second), store.absent_at(second, 41), store.open_refusals(second, 10, 40)) == (
        0, None, [],
    )  # fmt: skip
    store.set_audited(second, 3)
    store.adopt(ORIGIN, first)  # again: nothing moves back or over
    assert (store.audited_size(first), store.audited_size(second)) == (40, 3)
