"""Property tests for RFC 9162 proofs built from stored subtree hashes."""

from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from veriml.errors import VerificationFailed
from veriml.tlog import merkle

MAX = 300


@cache
def tree(size: int):
    """Every complete-subtree hash of a tree of `size` leaves, keyed as the log keys them, and its reader."""
    leaves = [merkle.leaf_hash(b"leaf %d" % i) for i in range(size)]
    store = {(0, i): h for i, h in enumerate(leaves)}
    level = 0
    while (1 << (level + 1)) <= size:
        level += 1
        for index in range(size >> level):
            store[(level, index)] = merkle.node_hash(store[(level - 1, 2 * index)], store[(level - 1, 2 * index + 1)])
    return leaves, (lambda keys: [store[key] for key in keys])


def root(size: int) -> bytes:
    leaves, _ = tree(MAX)
    return merkle.root_of_leaves(leaves[:size])


def flip(data: bytes, position: int, mask: int) -> bytes:
    return data[:position] + bytes([data[position] ^ mask]) + data[position + 1 :]


sizes = st.integers(1, MAX)


@given(sizes, st.data())
def test_every_inclusion_proof_verifies(size, data):
    index = data.draw(st.integers(0, size - 1))
    leaves, read = tree(MAX)
    proof = merkle.inclusion_proof(index, size, read)
    merkle.verify_inclusion(index, size, leaves[index], proof, root(size))
    assert merkle.root_hash(size, read) == root(size)


@given(sizes, st.data())
def test_every_consistency_proof_verifies(size, data):
    old = data.draw(st.integers(0, size))
    _, read = tree(MAX)
    proof = merkle.consistency_proof(old, size, read)
    merkle.verify_consistency(old, size, proof, root(old), root(size))


@settings(max_examples=300)
@given(sizes, st.data())
def test_any_flipped_byte_breaks_an_inclusion_proof(size, data):
    index = data.draw(st.integers(0, size - 1))
    leaves, read = tree(MAX)
    proof = merkle.inclusion_proof(index, size, read)
    parts = {"leaf": leaves[index], "root": root(size)} | {f"proof{i}": p for i, p in enumerate(proof)}
    target = data.draw(st.sampled_from(sorted(parts)))
    parts[target] = flip(parts[target], data.draw(st.integers(0, 31)), data.draw(st.integers(1, 255)))
    with pytest.raises(VerificationFailed):
        merkle.verify_inclusion(
            index, size, parts["leaf"], [parts[f"proof{i}"] for i in range(len(proof))], parts["root"]
        )


@settings(max_examples=300)
@given(st.integers(2, MAX), st.data())
def test_any_flipped_byte_breaks_a_consistency_proof(size, data):
    old = data.draw(st.integers(1, size - 1))
    _, read = tree(MAX)
    proof = merkle.consistency_proof(old, size, read)
    parts = {"old": root(old), "new": root(size)} | {f"proof{i}": p for i, p in enumerate(proof)}
    target = data.draw(st.sampled_from(sorted(parts)))
    parts[target] = flip(parts[target], data.draw(st.integers(0, 31)), data.draw(st.integers(1, 255)))
    with pytest.raises(VerificationFailed):
        merkle.verify_consistency(
            old, size, [parts[f"proof{i}"] for i in range(len(proof))], parts["old"], parts["new"]
        )


@given(sizes, sizes, st.data())
def test_a_proof_for_one_size_never_verifies_for_another(size, other, data):
    if size == other:
        other = size + 1
    index = data.draw(st.integers(0, min(size, other) - 1))
    leaves, read = tree(MAX + 1)
    proof = merkle.inclusion_proof(index, size, read)
    with pytest.raises(VerificationFailed):
        merkle.verify_inclusion(index, other, leaves[index], proof, merkle.root_of_leaves(leaves[:other]))
    old = data.draw(st.integers(1, size))
    consistency = merkle.consistency_proof(old, size, read)
    if consistency and other != size:
        with pytest.raises(VerificationFailed):
            merkle.verify_consistency(old, other, consistency, root(old), merkle.root_of_leaves(leaves[:other]))
