"""RFC 6962 / RFC 9162 reference vectors.

Source: transparency-dev/merkle, proof/verify_test.go (the test data the standard Go implementations share):
the 8-leaf reference tree, its roots at every size, and known inclusion and consistency proofs.
"""

import pytest

from veriml.errors import VerificationFailed
from veriml.tlog import merkle

LEAVES = [bytes.fromhex(h) for h in [
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f",
]]  # fmt: skip
ROOTS = [bytes.fromhex(h) for h in [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]]  # fmt: skip
EMPTY = bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")


def h(*hexes: str) -> list[bytes]:
    return [bytes.fromhex(x) for x in hexes]


# (leaf number, counting from 1 as the source does; tree size; proof)
INCLUSION = [
    (1, 1, []),
    (1, 8, h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
             "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")),
    (6, 8, h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
             "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")),
    (3, 3, h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")),
    (2, 5, h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
             "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")),
]  # fmt: skip
CONSISTENCY = [
    (1, 1, []),
    (1, 8, h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
             "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")),
    (6, 8, h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
             "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")),
    (2, 5, h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")),
    (6, 7, h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
             "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")),
]  # fmt: skip


def reference_store():
    """Every complete-subtree hash of the 8-leaf reference tree, as the log stores them."""
    store = {(0, i): merkle.leaf_hash(leaf) for i, leaf in enumerate(LEAVES)}
    for level in range(1, 4):
        for index in range(8 >> level):
            store[(level, index)] = merkle.node_hash(store[(level - 1, 2 * index)], store[(level - 1, 2 * index + 1)])
    return lambda keys: [store[key] for key in keys]


def test_empty_tree_root():
    assert merkle.EMPTY_ROOT == EMPTY
    assert merkle.root_of_leaves([]) == EMPTY


@pytest.mark.parametrize("size", range(1, 9))
def test_roots_at_every_size(size):
    assert merkle.root_of_leaves(merkle.leaf_hash(leaf) for leaf in LEAVES[:size]) == ROOTS[size - 1]
    assert merkle.root_hash(size, reference_store()) == ROOTS[size - 1]


@pytest.mark.parametrize(("leaf", "size", "proof"), INCLUSION)
def test_inclusion_vectors_are_generated_and_verify(leaf, size, proof):
    index = leaf - 1
    assert merkle.inclusion_proof(index, size, reference_store()) == proof
    merkle.verify_inclusion(index, size, merkle.leaf_hash(LEAVES[index]), proof, ROOTS[size - 1])


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY)
def test_consistency_vectors_are_generated_and_verify(old, new, proof):
    assert merkle.consistency_proof(old, new, reference_store()) == proof
    merkle.verify_consistency(old, new, proof, ROOTS[old - 1], ROOTS[new - 1])


@pytest.mark.parametrize(("leaf", "size", "proof"), [v for v in INCLUSION if v[2]])
def test_corrupted_inclusion_probes_fail(leaf, size, proof):
    """The probes of the source's corruptInclusionProof: wrong index, size, leaf, root, garbage, bit flips."""
    index, root, leaf_hash = leaf - 1, ROOTS[size - 1], merkle.leaf_hash(LEAVES[leaf - 1])
    some_hash = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")
    probes = [
        (index - 1, size, root, leaf_hash, proof), (index + 1, size, root, leaf_hash, proof),
        (index ^ 2, size, root, leaf_hash, proof), (index, size * 2, root, leaf_hash, proof),
        (index, size // 2, root, leaf_hash, proof), (index, size, root, merkle.leaf_hash(b"WrongLeaf"), proof),
        (index, size, EMPTY, leaf_hash, proof), (index, size, some_hash, leaf_hash, proof),
        (index, size, root, leaf_hash, [*proof, root]), (index, size, root, leaf_hash, [root, *proof]),
        (index, size, root, leaf_hash, proof[:-1]), (index, size, root, leaf_hash, [proof[0], some_hash, *proof[1:]]),
    ]  # fmt: skip
    for position in range(len(proof)):
        flipped = list(proof)
        flipped[position] = bytes([flipped[position][0] ^ 8]) + flipped[position][1:]
        probes.append((index, size, root, leaf_hash, flipped))
    for probe in probes:
        with pytest.raises(VerificationFailed):
            merkle.verify_inclusion(*probe[:2], probe[3], probe[4], probe[2])


@pytest.mark.parametrize(("old", "new", "proof"), [v for v in CONSISTENCY if v[2]])
def test_corrupted_consistency_probes_fail(old, new, proof):
    r1, r2 = ROOTS[old - 1], ROOTS[new - 1]
    probes = [
        (old - 1, new, proof, r1, r2), (old + 1, new, proof, r1, r2), (old ^ 2, new, proof, r1, r2),
        (old, new * 2, proof, r1, r2), (old, new // 2, proof, r1, r2), (old, new, proof, r2, r1),
        (old, new, proof, EMPTY, r2), (old, new, proof, r1, EMPTY), (old, new, [], r1, r2),
        (old, new, [*proof, r1], r1, r2), (old, new, [r2, *proof], r1, r2), (old, new, [proof[0], *proof], r1, r2),
        (old, new, proof[:-1], r1, r2),
    ]  # fmt: skip
    for position in range(len(proof)):
        flipped = list(proof)
        flipped[position] = bytes([flipped[position][0] ^ 16]) + flipped[position][1:]
        probes.append((old, new, flipped, r1, r2))
    for probe in probes:
        if probe[0] == probe[1] == 0 or (probe[0] == 0 and not probe[2]):
            continue  # trivially consistent sizes, as in the source
        with pytest.raises(VerificationFailed):
            merkle.verify_consistency(*probe)


def test_trivial_consistency_cases():
    merkle.verify_consistency(0, 0, [], EMPTY, EMPTY)
    merkle.verify_consistency(0, 5, [], EMPTY, ROOTS[4])
    merkle.verify_consistency(3, 3, [], ROOTS[2], ROOTS[2])
    for bad in [(1, 0, [], ROOTS[0], ROOTS[0]), (3, 3, [], ROOTS[2], ROOTS[3]), (0, 1, [EMPTY], EMPTY, ROOTS[0])]:
        with pytest.raises(VerificationFailed):
            merkle.verify_consistency(*bad)
