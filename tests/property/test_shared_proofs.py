"""A CheckpointProver gives every proof `merkle.inclusion_proof` gives, and refuses exactly the proofs
`merkle.verify_inclusion` refuses, in any order of asking: sharing the checks of earlier proofs never lets a wrong
leaf, a wrong stored hash or a wrong root through."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from veriml.errors import VerificationFailed
from veriml.identity import SigningKey
from veriml.tlog import Log, TlogProof, merkle
from veriml.tlog.checkpoint import b64
from veriml.tlog.shared_proofs import CheckpointProver
from veriml.tlog.store import TILE_HEIGHT

from .test_merkle_proofs import MAX, flip, root, tree


def plain_verdict(index: int, size: int, leaf: bytes, read, tree_root: bytes) -> list[bytes] | None:
    proof = merkle.inclusion_proof(index, size, read)
    try:
        merkle.verify_inclusion(index, size, leaf, proof, tree_root)
    except VerificationFailed:
        return None
    return proof


def shared_verdict(prover: CheckpointProver, index: int, leaf: bytes) -> list[bytes] | None:
    try:
        proof = prover.prove(index, leaf)
    except VerificationFailed:
        with pytest.raises(VerificationFailed):  # the text form refuses it too
            prover.proof_lines(index, leaf)
        return None
    assert prover.proof_lines(index, leaf) == [b64(h) for h in proof]
    return proof


@settings(max_examples=300)
@given(st.integers(1, MAX), st.data())
def test_shared_proofs_are_the_plain_proofs_and_refuse_what_they_refuse(size, data):
    leaves, read = tree(MAX)
    store = {}  # stored hashes the attack changed: (level, index) -> the wrong value
    if data.draw(st.booleans(), "corrupt a stored hash"):
        level = data.draw(st.integers(0, max(size.bit_length() - 1, 0)))
        if size >> level:
            key = (level, data.draw(st.integers(0, (size >> level) - 1)))
            (value,) = read([key])
            store[key] = flip(value, data.draw(st.integers(0, 31)), data.draw(st.integers(1, 255)))

    def stored(keys):
        return [store.get(key, value) for key, value in zip(keys, read(keys), strict=True)]

    tree_root = root(size)
    if data.draw(st.booleans(), "a wrong root"):
        tree_root = flip(tree_root, 0, 1)
    prover = CheckpointProver(size, tree_root, stored)
    for _ in range(data.draw(st.integers(1, 12), "proofs asked")):
        index = data.draw(st.integers(0, size - 1))
        leaf = leaves[index]
        if data.draw(st.integers(0, 4), "a wrong leaf") == 0:
            leaf = leaves[data.draw(st.integers(0, MAX - 1))] if data.draw(st.booleans()) else flip(leaf, 31, 1)
        assert shared_verdict(prover, index, leaf) == plain_verdict(index, size, leaf, stored, tree_root)


@settings(max_examples=25, deadline=None)
@given(count=st.integers(1, 40), data=st.data())
def test_a_logs_proof_text_is_the_tlog_proof_text(tmp_path_factory, count, data):
    """What an answer carries (`Log.prove_text`) is, byte for byte, the C2SP text of the log's checked proof."""
    key = SigningKey.generate("example.com/shared-proofs")
    with Log(tmp_path_factory.mktemp("log") / "log.sqlite", key) as log:
        entries = [b"entry %d" % i for i in range(count)]
        log.append_batch([(e, b"") for e in entries])
        latest = log.signed_checkpoint
        for index in data.draw(st.lists(st.integers(0, count - 1), min_size=1, max_size=10)):
            text = log.prove_text(index, latest, entries[index])
            assert text == log.prove(index, latest, entries[index]).to_text()
            assert TlogProof.parse(text).hashes == tuple(merkle.inclusion_proof(index, count, log.reader.hashes))
        with pytest.raises(VerificationFailed):
            log.prove_text(count - 1, latest, b"not the entry")


def test_proofs_reach_past_the_tiles_levels():
    """Trees taller than a tile: the upper hashes come from the store's upper levels, shared by every proof."""
    assert MAX > 1 << TILE_HEIGHT  # the trees above span more than one tile's height
    leaves, read = tree(MAX)
    prover = CheckpointProver(MAX, root(MAX), read)
    for index in (0, MAX - 1, 1 << TILE_HEIGHT, MAX // 2):
        assert prover.prove(index, leaves[index]) == merkle.inclusion_proof(index, MAX, read)
