"""Attacks on the dispute game (contracts/Disputes.vy), on the embedded chain: stealing a challenger's reward,
framing an honest node (a colluding minority, repeated disputes, a nondeterministic model, a window reopened with
a later tree, a fabricated leaf), lazy or vote-swapping committee members, grinding the draw, and reaching the
registry's stake hook around the game. Each asserts the specific refusal and that no honest stake moved."""

from __future__ import annotations

import os

import pytest

from tests.chain.dispute_world import (  # noqa: F401 (fixtures)
    BOND,
    MIN_STAKE,
    PARAMS,
    commit,
    drawn,
    past_commit_window,
    stake,
    vote,
    w_fixture,
    world_fixture,
)
from tests.chain.trees import Tree, digest
from veriml.chain import Inclusion
from veriml.chain.disputes import Vote
from veriml.errors import Conflict

from .dispute_attackers import copy_open, lazy_vote, penalize_directly, swapped_reveal, take_slasher_role


def honest_untouched(w) -> None:  # type: ignore[no-untyped-def]
    node = w.contracts.node(w.nodes[0].address)
    assert not node.slashed and node.stake == MIN_STAKE * 2


def test_open_copied_from_the_mempool_is_refused(w):
    """The open names its challenger in a commitment from an earlier block: a copier has none."""
    leaf, proof = w.tree.leaves[1], list(w.tree.inclusion(1, 2))
    with pytest.raises(Conflict, match="dispute: no commitment from this account for this dispute"):
        copy_open(w.game, w.account(), w.nodes[0].address, leaf, 1, 2, proof, BOND)
    assert w.game.count() == 0


def test_colluding_minority_cannot_frame_an_honest_node(w):
    """A cartel opens a dispute on a right answer from a staked node of its own and votes it wrong on the
    committee: the honest majority decides, the cartel loses the bond and its voter's share."""
    did, challenger, members = drawn(w, index=3, challenger=w.nodes[1], bond=0)
    vote(w, did, members, [w.right, w.right, w.wrong])
    w.game.resolve(w.account(), did)
    assert w.game.state(did).status == "node-right"
    honest_untouched(w)
    assert stake(w, challenger) == MIN_STAKE * 2 - BOND
    assert stake(w, members[2]) == MIN_STAKE * 2 - MIN_STAKE // 10


def test_decided_receipt_cannot_be_disputed_again(w):
    did, _, members = drawn(w, index=3)
    vote(w, did, members, [w.right] * 3)
    w.game.resolve(w.account(), did)
    with pytest.raises(Conflict, match="dispute: this receipt was already decided"):
        w.game.open(w.account(), w.nodes[0].address, w.inclusion(3, 4), BOND)
    honest_untouched(w)


def test_open_dispute_cannot_be_duplicated(w):
    drawn(w, index=3)
    with pytest.raises(Conflict, match="dispute: this receipt is already under dispute"):
        w.game.open(w.account(), w.nodes[0].address, w.inclusion(3, 4), BOND)


def test_nondeterministic_model_splits_the_committee_and_slashes_nobody(w):
    """A publisher's nondeterministic model (were it published: see test_framing_random_ops) gives each member
    another output: no strict majority, no verdict, and nobody loses stake for it."""
    did, challenger, members = drawn(w, index=3)
    vote(w, did, members, [digest("run a"), digest("run b"), w.right])
    w.game.resolve(w.account(), did)
    assert w.game.state(did).status == "no-verdict"
    honest_untouched(w)
    assert w.game.claimable(challenger.address) == BOND
    assert [stake(w, m) for m in members] == [MIN_STAKE * 2] * 3


def test_other_runtime_class_is_not_comparable_and_slashes_nobody(w):
    """Members on another runtime class than the receipt's (another CPU) vote not comparable: no verdict."""
    did, _, members = drawn(w, index=1)
    vote(w, did, members, [None, None, None])
    w.game.resolve(w.account(), did)
    assert w.game.state(did).status == "no-verdict"
    assert not w.contracts.node(w.nodes[0].address).slashed


def test_window_cannot_be_reopened_with_a_later_tree(w):
    w.chain.increase_time(PARAMS.challenge_window + 1)
    with pytest.raises(Conflict, match="dispute: the challenge window has passed"):
        w.game.open(w.account(), w.nodes[0].address, w.inclusion(1, 2), BOND)
    with pytest.raises(Conflict, match="dispute: the leaf is not proven under the first anchored tree"):
        w.game.open(w.account(), w.nodes[0].address, w.inclusion(1, 4), BOND)


def test_fabricated_receipt_the_node_never_logged_is_refused(w):
    fake = Tree([w.leaf(digest("in 0"), digest("f0"), 0), w.leaf(digest("in 1"), w.right, 1)])
    inclusion = Inclusion(fake.leaves[1], 1, 2, tuple(fake.inclusion(1)))
    with pytest.raises(Conflict, match="dispute: the leaf is not proven under the first anchored tree"):
        w.game.open(w.account(), w.nodes[0].address, inclusion, BOND)


def test_lazy_member_voting_the_nodes_claim_loses_stake(w):
    did, _, members = drawn(w, index=1)
    claimed = w.game.state(did).claimed
    votes = [Vote(commit(w.salt, w.right), True, os.urandom(32)) for _ in range(2)] + [lazy_vote(claimed)]
    for member, v in zip(members, votes, strict=True):
        w.game.commit_vote(member, did, v)
    past_commit_window(w, did)
    for member, v in zip(members, votes, strict=True):
        w.game.reveal_vote(member, did, v)
    w.game.resolve(w.account(), did)
    assert w.game.state(did).status == "node-wrong"
    assert stake(w, members[2]) == MIN_STAKE * 2 - MIN_STAKE // 10


def test_member_cannot_swap_its_vote_after_seeing_the_others(w):
    did, _, members = drawn(w, index=1)
    honest = Vote(commit(w.salt, w.right), True, os.urandom(32))
    w.game.commit_vote(members[0], did, honest)
    past_commit_window(w, did)
    with pytest.raises(Conflict, match="vote: reveal does not match the commitment"):
        w.game.reveal_vote(members[0], did, swapped_reveal(honest, w.game.state(did).claimed))
    with pytest.raises(Conflict, match="vote: no commitment from this member"):
        w.game.reveal_vote(members[1], did, honest)
    with pytest.raises(Conflict, match="vote: not on this dispute's committee"):
        w.game.commit_vote(w.nodes[0], did, honest)


def test_tolerance_vote_is_only_the_claim_or_disagree(w):
    """For a model compared under a tolerance, a member votes within the policy (the claim) or DISAGREE: an
    arbitrary value that would split the vote is refused."""
    did, _, members = drawn(w, index=4)
    assert not w.game.state(did).exact
    split = Vote(os.urandom(32), True, os.urandom(32))
    w.game.commit_vote(members[0], did, split)
    votes = [Vote(w.game.disagree(), True, os.urandom(32)) for _ in range(2)]
    for member, v in zip(members[1:], votes, strict=True):
        w.game.commit_vote(member, did, v)
    past_commit_window(w, did)
    with pytest.raises(Conflict, match="vote: a tolerance vote is the claim or DISAGREE"):
        w.game.reveal_vote(members[0], did, split)
    for member, v in zip(members[1:], votes, strict=True):
        w.game.reveal_vote(member, did, v)
    w.chain.tester.mine_blocks(PARAMS.reveal_window)
    w.game.resolve(w.account(), did)
    assert w.game.state(did).status == "node-wrong"  # two of three outside the policy: a strict majority


def test_draw_cannot_be_ground(w):
    """Nobody draws from a hash known when the dispute opened, and a hash too old to read is never replaced by a
    chosen one: the draw moves ahead instead."""
    challenger = w.account()
    did = w.game.open(challenger, w.nodes[0].address, w.inclusion(1, 2), BOND)
    with pytest.raises(Conflict, match="draw: the draw block is not mined yet"):
        w.game.draw(challenger, did)
    w.chain.tester.mine_blocks(300)
    w.game.draw(challenger, did)
    assert w.game.state(did).status == "open" and w.game.state(did).committee == ()


def test_registry_stake_hook_is_only_for_the_dispute_contract(w):
    with pytest.raises(Conflict, match="only the dispute contract penalizes"):
        penalize_directly(w.game, w.nodes[1], w.nodes[0].address)
    with pytest.raises(Conflict, match="only the deployer sets the slasher"):
        take_slasher_role(w.game, w.nodes[1])
    with pytest.raises(Conflict, match="slasher already set"):
        take_slasher_role(w.game, w.faucet)
    honest_untouched(w)
