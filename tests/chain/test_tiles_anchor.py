"""Proofs computed from a log's public tiles equal the log's own, across tile boundaries, and a log anchored on the
embedded chain from its tiles alone (as `veriml chain anchor` does) passes the contract's consistency check."""

from __future__ import annotations

import pytest

from veriml.chain.anchor import AnchorSource, anchor_once
from veriml.errors import NotFound
from veriml.tlog import Log
from veriml.tlog.tile_reader import TileLog

from .conftest import MIN_STAKE


def fill(log: Log, count: int) -> None:
    start = log.sequenced_size
    log.append_batch([(b"entry %d" % n, b"") for n in range(start, start + count)])
    log.integrate()


def test_tile_proofs_equal_the_logs_own(log, served):
    fill(log, 1300)  # subtrees up to level 10: tiles of level 0 and 1, full and partial
    for size in (1, 2, 255, 256, 257, 700, 1024, 1300):
        with TileLog(served, size) as tiles:
            assert tiles.root() == log.root(size)
            for index in {0, size // 2, size - 1}:
                assert tiles.inclusion_proof(index) == log.inclusion_proof(index, size)
            for old in {1, size // 3 or 1, size - 1} - {0}:
                if old < size:
                    assert tiles.consistency_proof(old) == log.consistency_proof(old, size)


def test_a_tile_beyond_the_tree_is_not_found(log, served):
    fill(log, 10)
    with TileLog(served, 300) as tiles, pytest.raises(NotFound):
        tiles.inclusion_proof(299)


def test_anchoring_from_tiles_passes_the_contract(log, served, contracts, accounts):
    contracts.register(accounts[1], log.key, served, MIN_STAKE)

    def source() -> AnchorSource:
        tiles = TileLog(served, 0)
        latest = tiles.checkpoint()

        def consistency(old: int, new: int) -> list[bytes]:
            with TileLog(served, new) as sized:
                return sized.consistency_proof(old)

        return AnchorSource(lambda: latest, consistency)

    fill(log, 300)
    log.sign_checkpoint()
    assert anchor_once(contracts, accounts[1], source()) == (0, 300)
    fill(log, 1000)
    log.sign_checkpoint()
    assert anchor_once(contracts, accounts[1], source()) == (300, 1300)
    assert anchor_once(contracts, accounts[1], source()) is None  # nothing new: no transaction
    node = contracts.node(accounts[1].address)
    assert (node.anchored_size, node.anchored_root) == (1300, log.root(1300))


def test_shadow_evidence_from_an_entry_the_node_signed_but_did_not_anchor(log, served, contracts, accounts):
    from veriml.chain.evidence import shadow_evidence
    from veriml.errors import InvalidInput
    from veriml.tlog import Checkpoint, SignedCheckpoint, TlogProof, sign_note

    from .trees import Tree

    fill(log, 10)
    contracts.register(accounts[1], log.key, served, MIN_STAKE)
    contracts.anchor(accounts[1], 10, log.root(10), [])
    # The node signs a checkpoint of another history (entries 6.. differ) and gives a client entry 7 of it.
    shadow = Tree([b"entry %d" % n for n in range(6)] + [b"other %d" % n for n in range(6, 12)])
    checkpoint = Checkpoint(log.key.name, 12, shadow.root())
    signed = SignedCheckpoint(checkpoint, sign_note(checkpoint.text(), log.key))
    proof = TlogProof(7, tuple(shadow.inclusion(7)), signed)
    evidence = shadow_evidence(contracts, log.key.public, b"other 7", proof)
    assert (evidence.fork.anchored_size, evidence.fork.index) == (10, 7)
    evidence.submit(contracts, accounts[5])
    assert contracts.node(accounts[1].address).slashed

    # An entry of the history the node anchored is no evidence.
    honest = TlogProof(3, tuple(log.inclusion_proof(3, 10)), log.sign_checkpoint())
    with pytest.raises(InvalidInput, match="anchored this very checkpoint"):
        shadow_evidence(contracts, log.key.public, b"entry 3", honest)
