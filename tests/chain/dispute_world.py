"""One embedded chain for the dispute tests (tests/chain/test_disputes.py and tests/adversarial/test_dispute_*.py):
the contracts with a committee of 3, a registered exact model, five registered nodes, and node 0's log of four
receipts (entry 1 answered wrongly, entry 3 rightly) anchored as two trees. Registration checks an Ed25519
signature in py-evm (~2 s a node), so the world is made once per session and each test runs from a snapshot."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest
from eth_account import Account

from veriml.chain import Chain, Contracts, Inclusion, deploy
from veriml.chain.connection import EMBEDDED_KEYS
from veriml.chain.contracts import DisputeParams
from veriml.chain.disputes import DisputeGame, Vote
from veriml.identity import SigningKey

from .trees import Tree, chain_manifest, digest

MIN_STAKE = 10**17
EXIT_DELAY = 3600
BOND = 10**16
PARAMS = DisputeParams(committee_size=3, draw_delay=2, commit_window=6, reveal_window=6, challenge_window=1800,
                       min_bond=BOND)  # fmt: skip
RUNTIME = digest("onnxruntime 1.20 cpu")


def commit(salt: bytes, value: bytes) -> bytes:
    return hashlib.sha256(salt + value).digest()


class World:
    def __init__(self) -> None:
        self.chain = Chain.embedded()
        self.keys = list(EMBEDDED_KEYS)
        self.faucet = Account.from_key(self.keys[0])
        deployment = deploy(self.chain, self.faucet, min_stake=MIN_STAKE, exit_delay=EXIT_DELAY, disputes=PARAMS)
        self.contracts = Contracts(self.chain, deployment)
        self.game = DisputeGame(self.contracts)
        publisher = self.account()
        signed = chain_manifest(publisher.address, "alice/mlp")
        self.contracts.register_model(publisher, signed)
        self.manifest = signed.id.value
        tolerant = chain_manifest(publisher.address, "alice/tolerant", exact=False)
        self.contracts.register_model(publisher, tolerant)
        self.tolerant = tolerant.id.value
        self.nodes = [self.account(3) for _ in range(5)]
        for n, node in enumerate(self.nodes):
            self.contracts.register(node, SigningKey.generate(f"node{n}.example"), f"http://127.0.0.1:9/{n}",
                                    MIN_STAKE * 2)  # fmt: skip
        self.tree = Tree()
        self.salt = os.urandom(32)
        self.right = digest("the model's output")
        self.wrong = digest("a wrong output")
        # Node 0 answered wrongly (entry 1) and rightly (entry 3), among filler entries; it anchors two trees.
        for n, out in enumerate([digest("f0"), self.wrong, digest("f2"), self.right]):
            self.tree.append(self.leaf(digest(f"in {n}"), out, n))
        self.contracts.anchor(self.nodes[0], 2, self.tree.root(2), [])
        self.contracts.anchor(self.nodes[0], 4, self.tree.root(4), self.tree.consistency(2, 4))
        # Entry 4: a receipt for a model compared under a tolerance policy, anchored as a third tree.
        self.tree.append(self.leaf(digest("in 4"), self.right, 4, self.tolerant))
        self.contracts.anchor(self.nodes[0], 5, self.tree.root(5), self.tree.consistency(4, 5))

    def account(self, ether: int = 2) -> Any:
        account = Account.create()
        self.chain.fund(self.faucet, account.address, ether * 10**18)
        return account

    def leaf(self, d_in: bytes, d_out: bytes, n: int, manifest: bytes | None = None) -> bytes:
        manifest = manifest or self.manifest
        return manifest + commit(self.salt, d_in) + commit(self.salt, d_out) + RUNTIME + digest(f"r{n}")

    def inclusion(self, index: int, size: int) -> Inclusion:
        return Inclusion(self.tree.leaves[index], index, size, tuple(self.tree.inclusion(index, size)))


_WORLD: list[World] = []  # made once per process: both test modules import the fixture


@pytest.fixture(scope="session", name="world")
def world_fixture() -> World:
    if not _WORLD:
        _WORLD.append(World())
    return _WORLD[0]


@pytest.fixture(name="w")
def w_fixture(world):  # type: ignore[no-untyped-def]
    """Each test starts from the same chain state: nodes registered, node 0's two trees anchored."""
    snapshot = world.chain.tester.take_snapshot()
    yield world
    world.chain.tester.revert_to_snapshot(snapshot)


def by_address(w: World, address: str) -> Any:
    return next(n for n in w.nodes if n.address == address)


def drawn(w: World, index: int = 1, challenger: Any = None, bond: int = BOND) -> tuple[int, Any, list[Any]]:
    challenger = challenger or w.account()
    did = w.game.open(challenger, w.nodes[0].address, w.inclusion(index, w.game.first_covering_size(
        w.nodes[0].address, index)), bond)  # fmt: skip
    w.chain.tester.mine_blocks(PARAMS.draw_delay)
    w.game.draw(w.account(), did)
    members = [by_address(w, a) for a in w.game.state(did).committee]
    return did, challenger, members


def vote(w: World, did: int, members: list[Any], outputs: list[bytes | None], reveal: list[bool] | None = None):  # type: ignore[no-untyped-def]
    """Each member commits, then (where `reveal` says) reveals: an output commitment, or None: not comparable."""
    votes = [Vote.not_comparable() if o is None else Vote(commit(w.salt, o), True, os.urandom(32)) for o in outputs]
    for member, v in zip(members, votes, strict=True):
        w.game.commit_vote(member, did, v)
    past_commit_window(w, did)
    for member, v, show in zip(members, votes, reveal or [True] * len(members), strict=True):
        if show:
            w.game.reveal_vote(member, did, v)


def past_commit_window(w: World, did: int) -> None:
    """Mine up to the commit window's last block: the next transaction is the reveal window's first."""
    w.chain.tester.mine_blocks(max(0, w.game.state(did).commit_end - w.chain.w3.eth.block_number))


def stake(w: World, account: Any) -> int:
    return w.contracts.node(account.address).stake
