"""The dispute game (contracts/Disputes.vy) on the embedded chain: a wrong node is slashed by its committee, a
frivolous challenger loses its bond, a lying minority does not change the verdict, every phase's timeout resolves
as documented, a receipt not under an anchored root cannot be disputed, runtimes the committee cannot reproduce
give no verdict, and a result is final once its window passed undisputed."""

from __future__ import annotations

import os

import pytest

from veriml.chain import Inclusion
from veriml.chain.disputes import Vote
from veriml.errors import Conflict

from .dispute_world import (  # noqa: F401 (fixtures)
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
from .trees import Tree, digest


def test_consistently_wrong_node_is_slashed_by_its_committee(w):
    did, challenger, members = drawn(w)
    assert w.nodes[0] not in members and len(set(m.address for m in members)) == 3
    vote(w, did, members, [w.right, w.right, w.right])
    w.game.resolve(w.account(), did)
    state = w.game.state(did)
    assert state.status == "node-wrong" and state.verdict == commit(w.salt, w.right)
    node = w.contracts.node(w.nodes[0].address)
    assert node.slashed and node.stake == 0 and w.nodes[0].address not in [n.account for n in w.contracts.nodes()]
    assert w.game.claimable(challenger.address) == BOND + MIN_STAKE  # bond back + 50% of a 2x stake
    assert [w.game.claimable(m.address) for m in members] == [MIN_STAKE * 2 // 4 // 3] * 3
    before = w.chain.balance(challenger.address)
    w.game.claim(challenger)
    assert w.chain.balance(challenger.address) > before + BOND + MIN_STAKE * 99 // 100


def test_frivolous_challenger_loses_its_bond(w):
    did, challenger, members = drawn(w, index=3)
    vote(w, did, members, [w.right] * 3)
    w.game.resolve(w.account(), did)
    assert w.game.state(did).status == "node-right"
    assert w.game.claimable(challenger.address) == 0
    assert w.game.claimable(w.nodes[0].address) == BOND // 2
    assert [w.game.claimable(m.address) for m in members] == [BOND // 2 // 3] * 3
    assert stake(w, w.nodes[0]) == MIN_STAKE * 2 and not w.contracts.node(w.nodes[0].address).slashed
    with pytest.raises(Conflict, match="dispute: this receipt was already decided"):
        w.game.open(w.account(), w.nodes[0].address, w.inclusion(3, 4), BOND)


def test_staked_challenger_is_never_on_the_committee_and_pays_from_its_stake(w):
    did, _, members = drawn(w, index=3, challenger=w.nodes[1], bond=0)
    assert {m.address for m in members} == {n.address for n in w.nodes[2:]}  # neither node 0 nor node 1
    vote(w, did, members, [w.right] * 3)
    w.game.resolve(w.account(), did)
    assert stake(w, w.nodes[1]) == MIN_STAKE * 2 - BOND  # the bond came out of its stake


def test_lying_committee_minority_does_not_change_the_verdict(w):
    # a minority lying against an honest node slashes nobody but itself
    did, _, members = drawn(w, index=3)
    vote(w, did, members, [w.right, w.right, w.wrong])
    w.game.resolve(w.account(), did)
    assert w.game.state(did).status == "node-right" and not w.contracts.node(w.nodes[0].address).slashed
    assert stake(w, members[2]) == MIN_STAKE * 2 - MIN_STAKE // 10  # a comparable vote against the verdict
    # and a minority covering for a wrong node does not save it
    did, _, members = drawn(w)
    vote(w, did, members, [w.right, w.wrong, w.right])  # the liar repeats the node's wrong output
    w.game.resolve(w.account(), did)
    assert w.game.state(did).status == "node-wrong"
    assert stake(w, members[1]) < MIN_STAKE * 2 and w.contracts.node(w.nodes[0].address).slashed


def test_member_that_does_not_reveal_loses_a_share_and_the_majority_still_decides(w):
    did, _, members = drawn(w)
    vote(w, did, members, [w.right] * 3, reveal=[True, True, False])
    with pytest.raises(Conflict, match="resolve: the reveal window is still open"):
        w.game.resolve(w.account(), did)
    w.chain.tester.mine_blocks(PARAMS.reveal_window)
    with pytest.raises(Conflict, match="vote: the reveal window has closed"):
        w.game.reveal_vote(members[2], did, Vote(commit(w.salt, w.right), True, os.urandom(32)))
    w.game.resolve(w.account(), did)
    assert w.game.state(did).status == "node-wrong"
    assert stake(w, members[2]) == MIN_STAKE * 2 - MIN_STAKE // 10


def test_silent_committee_gives_no_verdict_and_the_bond_back(w):
    did, challenger, members = drawn(w)
    w.chain.tester.mine_blocks(PARAMS.commit_window + 1)
    with pytest.raises(Conflict, match="vote: the commit window has closed"):
        w.game.commit_vote(members[0], did, Vote(commit(w.salt, w.right), True, os.urandom(32)))
    w.chain.tester.mine_blocks(PARAMS.reveal_window)
    w.game.resolve(w.account(), did)
    assert w.game.state(did).status == "no-verdict"
    assert w.game.claimable(challenger.address) == BOND
    assert not w.contracts.node(w.nodes[0].address).slashed
    assert [stake(w, m) for m in members] == [MIN_STAKE * 2 - MIN_STAKE // 10] * 3


def test_draw_waits_for_its_block_and_moves_on_when_the_hash_is_gone(w):
    challenger = w.account()
    did = w.game.open(challenger, w.nodes[0].address, w.inclusion(1, 2), BOND)
    with pytest.raises(Conflict, match="draw: the draw block is not mined yet"):
        w.game.draw(challenger, did)
    w.chain.tester.mine_blocks(300)  # nobody drew within 256 blocks: blockhash is gone
    w.game.draw(challenger, did)
    state = w.game.state(did)
    assert state.status == "open" and state.committee == () and state.draw_block > w.chain.w3.eth.block_number
    w.chain.tester.mine_blocks(PARAMS.draw_delay)
    w.game.draw(challenger, did)
    assert w.game.state(did).status == "voting"


def test_runtime_the_committee_cannot_reproduce_is_not_comparable_never_a_verdict(w):
    did, challenger, members = drawn(w, index=3)
    vote(w, did, members, [None, None, w.right])
    w.game.resolve(w.account(), did)
    assert w.game.state(did).status == "no-verdict"
    assert w.game.claimable(challenger.address) == BOND
    assert [stake(w, m) for m in members] == [MIN_STAKE * 2] * 3  # not comparable is no fault


def test_dispute_on_a_receipt_not_under_an_anchored_root_is_refused(w):
    node = w.nodes[0].address
    outsider = Tree([w.leaf(digest("x"), digest("y"), 9), w.leaf(digest("x2"), digest("y2"), 10)])
    cases = [
        Inclusion(outsider.leaves[1], 1, 2, tuple(outsider.inclusion(1))),  # another tree's leaf at an anchored size
        Inclusion(w.tree.leaves[3], 3, 3, tuple(w.tree.inclusion(3, 4))),  # a size the node never anchored
        w.inclusion(1, 4),  # a later tree than the first covering one (a window extended on purpose)
    ]
    for inclusion in cases:
        with pytest.raises(Conflict, match="dispute: the leaf is not proven under the first anchored tree"):
            w.game.open(w.account(), node, inclusion, BOND)
    with pytest.raises(Conflict, match="dispute: bond below the minimum"):
        w.game.open(w.account(), node, w.inclusion(1, 2), BOND - 1)
    with pytest.raises(Conflict, match="dispute: post a bond or be an active staked node"):
        w.game.open(w.account(), node, w.inclusion(1, 2), 0)
    with pytest.raises(Conflict, match="dispute: a node cannot dispute itself"):
        w.game.open(w.nodes[0], node, w.inclusion(1, 2), BOND)


def test_only_the_committee_votes_and_a_reveal_must_match(w):
    did, _, members = drawn(w)
    with pytest.raises(Conflict, match="vote: not on this dispute's committee"):
        w.game.commit_vote(w.nodes[0], did, Vote(commit(w.salt, w.wrong), True, os.urandom(32)))
    honest = Vote(commit(w.salt, w.right), True, os.urandom(32))
    w.game.commit_vote(members[0], did, honest)
    past_commit_window(w, did)
    with pytest.raises(Conflict, match="vote: reveal does not match the commitment"):
        w.game.reveal_vote(members[0], did, Vote(commit(w.salt, w.wrong), True, honest.nonce))


def test_result_is_final_after_its_window_unless_disputed(w):
    node = w.nodes[0].address
    right, wrong = w.inclusion(3, 4), w.inclusion(1, 2)
    assert not w.game.is_final_undisputed(node, right)  # still in its window
    did, _, members = drawn(w)
    vote(w, did, members, [w.right] * 3)
    w.chain.increase_time(1801)
    assert w.game.is_final_undisputed(node, right)
    assert not w.game.is_final_undisputed(node, wrong)  # under dispute
    assert not w.game.is_final_undisputed(node, w.inclusion(1, 4))
    with pytest.raises(Conflict, match="dispute: the challenge window has passed"):
        w.game.open(w.account(), node, right, BOND)
    w.game.resolve(w.account(), did)
    assert not w.game.is_final_undisputed(node, right)  # the node was slashed: none of its results is final
