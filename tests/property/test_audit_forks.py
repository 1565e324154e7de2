"""The auditor's fork judgement (`audit._check_extends`): a fork is recorded only when the log's own tiles, proven
to be the newer checkpoint's tree, give the older checkpoint's size another root; tiles that prove nothing (wrong
or missing) never make a fork, whatever the two checkpoints are."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from veriml.errors import VerificationFailed
from veriml.node.audit import _check_extends, _TilesProveNothing
from veriml.tlog import Checkpoint, merkle


class MemoryTiles:
    """What TileLog answers, from leaf hashes in memory."""

    def __init__(self, leaves: list[bytes]) -> None:
        self.leaves = leaves

    def hashes(self, keys):  # type: ignore[no-untyped-def]
        return [merkle.root_of_leaves(self.leaves[i << level : (i + 1) << level]) for level, i in keys]

    def consistency_proof(self, old: int) -> list[bytes]:
        return merkle.consistency_proof(old, len(self.leaves), self.hashes)


def checkpoint(leaves: list[bytes]) -> SimpleNamespace:
    return SimpleNamespace(checkpoint=Checkpoint("example.org/log", len(leaves), merkle.root_of_leaves(leaves)))


def leaves_of(n: int, salt: bytes = b"") -> list[bytes]:
    return [merkle.leaf_hash(salt + i.to_bytes(4, "big")) for i in range(n)]


sizes = st.integers(1, 70).flatmap(lambda new: st.tuples(st.integers(1, new), st.just(new)))


@settings(max_examples=150, deadline=None)
@given(sizes)
def test_one_history_passes(sizes):
    old, new = sizes
    leaves = leaves_of(new)
    _check_extends(checkpoint(leaves[:old]), checkpoint(leaves), MemoryTiles(leaves))


@settings(max_examples=150, deadline=None)
@given(sizes, st.data())
def test_a_fork_is_proven_with_the_proof_in_its_message(sizes, data):
    old, new = sizes
    leaves = leaves_of(new)
    forked = list(leaves[:old])
    changed = data.draw(st.integers(0, old - 1))
    forked[changed] = merkle.leaf_hash(b"another entry")
    with pytest.raises(VerificationFailed) as raised:
        _check_extends(checkpoint(forked), checkpoint(leaves), MemoryTiles(leaves))
    if old < new:
        assert "consistency proof from the tiles" in str(raised.value)


@settings(max_examples=150, deadline=None)
@given(sizes, st.data())
def test_tiles_that_prove_nothing_never_make_a_fork(sizes, data):
    """Tiles of another tree than the newer checkpoint's: whether or not the older checkpoint is a prefix of it,
    the judgement is 'tiles prove nothing', never a fork."""
    old, new = sizes
    if old == new:
        return  # equal sizes are judged by their roots alone
    leaves = leaves_of(new)
    wrong = list(leaves)
    wrong[data.draw(st.integers(0, new - 1))] = merkle.leaf_hash(b"a corrupt tile")
    older = checkpoint(data.draw(st.sampled_from([leaves[:old], leaves_of(old, b"fork")])))
    try:
        _check_extends(older, checkpoint(leaves), MemoryTiles(wrong))
    except _TilesProveNothing:
        pass  # the tiles do not lead to the newer root
    # Or the corruption is outside what the proof reads, and the proof is sound: an honest prefix passes, a fork is
    # proven (VerificationFailed would propagate and fail the test only for an honest prefix).
    except VerificationFailed:
        assert older.checkpoint.root != merkle.root_of_leaves(leaves[:old])
