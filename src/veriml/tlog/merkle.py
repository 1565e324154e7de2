"""RFC 9162 §2.1 Merkle tree hashing, proofs from stored subtree hashes, and proof verification.

Hashes: leaf = SHA-256(0x00 || data), node = SHA-256(0x01 || left || right), empty tree = SHA-256("").
Stored hashes are the roots of complete ("perfect") subtrees: level L, index N covers leaves
[N * 2^L, (N + 1) * 2^L). Once written they never change, so any proof for any tree size can be assembled from
them; the hash of an incomplete right edge is folded from the complete subtrees that make it up.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

from veriml.errors import InvalidInput, VerificationFailed

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
MAX_SIZE = 1 << 48  # far beyond any log here; keeps (level, index) packable into one integer key

SubtreeKey = tuple[int, int]  # (level, index) of a complete subtree
HashReader = Callable[[Sequence[SubtreeKey]], Sequence[bytes]]  # stored hashes for keys, in order


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(size: int) -> int:
    """The largest power of two smaller than size (size > 1): where RFC 9162 splits a tree."""
    return 1 << ((size - 1).bit_length() - 1)


def _complete_subtrees(start: int, end: int) -> list[SubtreeKey]:
    """The complete subtrees, left to right, whose leaves are exactly [start, end); start is aligned as every
    range in an RFC 9162 proof is."""
    size = end - start
    if size > 0 and size & (size - 1) == 0:  # the common case in a proof: one complete subtree
        level = size.bit_length() - 1
        return [(level, start >> level)]
    keys = []
    while start < end:
        level = (end - start).bit_length() - 1  # the largest power of two that fits
        keys.append((level, start >> level))
        start += 1 << level
    return keys


def _fold(hashes: Sequence[bytes]) -> bytes:
    """The root of consecutive complete subtrees of decreasing size: fold from the right."""
    root = hashes[-1]
    for left in reversed(hashes[:-1]):
        root = node_hash(left, root)
    return root


def _inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The [start, end) ranges whose hashes make PATH(index, D[0:size]) (RFC 9162 §2.1.3.1), leaf side first."""
    ranges = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
    ranges.reverse()
    return ranges


def _consistency_ranges(old: int, new: int) -> list[tuple[int, int]]:
    """The ranges whose hashes make PROOF(old, D[0:new]) = SUBPROOF(old, D[0:new], true) (RFC 9162 §2.1.4.1)."""
    ranges: list[tuple[int, int]] = []

    def subproof(m: int, start: int, end: int, complete: bool) -> None:
        if m == end - start:
            if not complete:
                ranges.append((start, end))
            return
        k = _split(end - start)
        if m <= k:
            subproof(m, start, start + k, complete)
            ranges.append((start + k, end))
        else:
            subproof(m - k, start + k, end, False)
            ranges.append((start, start + k))

    subproof(old, 0, new, True)
    return ranges


def _hashes_of_ranges(ranges: list[tuple[int, int]], read: HashReader) -> list[bytes]:
    """Hash each range from stored complete-subtree hashes, fetched in one call."""
    decompositions = [_complete_subtrees(start, end) for start, end in ranges]
    keys = list(dict.fromkeys(key for keys in decompositions for key in keys))
    found = dict(zip(keys, read(keys), strict=True))
    return [found[keys[0]] if len(keys) == 1 else _fold([found[key] for key in keys]) for keys in decompositions]


def check_size(size: int, what: str = "tree size") -> int:
    if type(size) is not int or not 0 <= size < MAX_SIZE:
        raise InvalidInput(f"{what} {size!r}: must be an integer from 0 to {MAX_SIZE - 1}")
    return size


def inclusion_proof(index: int, size: int, read: HashReader) -> list[bytes]:
    check_size(size)
    if type(index) is not int or not 0 <= index < size:
        raise InvalidInput(f"index {index!r}: not in a tree of size {size}")
    return _hashes_of_ranges(_inclusion_ranges(index, size), read)


def consistency_proof(old: int, new: int, read: HashReader) -> list[bytes]:
    check_size(old, "old size")
    check_size(new, "new size")
    if old > new:
        raise InvalidInput(f"consistency: old size {old} is larger than new size {new}")
    if old == 0 or old == new:
        return []
    return _hashes_of_ranges(_consistency_ranges(old, new), read)


def root_hash(size: int, read: HashReader) -> bytes:
    check_size(size)
    if size == 0:
        return EMPTY_ROOT
    return _hashes_of_ranges([(0, size)], read)[0]


def root_of_leaves(leaf_hashes: Iterable[bytes]) -> bytes:
    """The root over a whole list of leaf hashes, in O(n) with an O(log n) frontier: for recomputation checks."""
    frontier: list[tuple[int, bytes]] = []
    count = 0
    for value in leaf_hashes:
        level, digest = 0, value
        while frontier and frontier[-1][0] == level:
            digest = node_hash(frontier.pop()[1], digest)
            level += 1
        frontier.append((level, digest))
        count += 1
    return _fold([digest for _, digest in frontier]) if count else EMPTY_ROOT


def _check_hash(value: object, what: str) -> bytes:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        raise VerificationFailed(f"{what}: expected a {HASH_SIZE}-byte hash")
    return bytes(value)


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """RFC 9162 §2.1.3.2: raise VerificationFailed unless `proof` proves leaf hash `leaf` at `index` under
    `root` of a tree of `size` leaves."""
    if type(index) is not int or type(size) is not int or not 0 <= index < size:
        raise VerificationFailed(f"inclusion: index {index!r} is not inside a tree of size {size!r}")
    hash_ = _check_hash(leaf, "inclusion: leaf hash")
    _check_hash(root, "inclusion: root")
    for position, sibling in enumerate(proof):
        if not isinstance(sibling, bytes) or len(sibling) != HASH_SIZE:
            raise VerificationFailed(f"inclusion: proof hash {position}: expected a {HASH_SIZE}-byte hash")
    sha256 = hashlib.sha256
    fn, sn = index, size - 1
    for sibling in proof:
        if sn == 0:
            raise VerificationFailed(f"inclusion: proof has {len(proof)} hashes, more than index and size allow")
        if fn & 1 or fn == sn:
            hash_ = sha256(b"\x01" + sibling + hash_).digest()
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            hash_ = sha256(b"\x01" + hash_ + sibling).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationFailed(f"inclusion: proof has {len(proof)} hashes, fewer than index and size need")
    if hash_ != root:
        raise VerificationFailed(f"inclusion: proof for index {index} does not lead to the root of size {size}")


def consistency_roots(old: int, new: int, proof: Sequence[bytes], old_root: bytes) -> tuple[bytes, bytes]:
    """The roots of the trees of size `old` and `new` that a consistency proof leads to (RFC 9162 §2.1.4.2), for
    0 < old < new; VerificationFailed for a proof of the wrong shape. When `old` is a power of two the old tree is
    a subtree of the new one and the proof leaves it out: it starts from `old_root`, returned as the first root."""
    old_root = _check_hash(old_root, "consistency: old root")
    proof = [_check_hash(p, f"consistency: proof hash {i}") for i, p in enumerate(proof)]
    if type(old) is not int or type(new) is not int or not 0 < old < new:
        raise VerificationFailed(f"consistency: sizes {old!r} -> {new!r} are not two growing sizes")
    if not proof:
        raise VerificationFailed(f"consistency: empty proof from size {old} to {new}")
    if old & (old - 1) == 0:  # old is a power of two: its root is the first node of the path
        proof = [old_root, *proof]
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            raise VerificationFailed(f"consistency: proof from {old} to {new} has too many hashes")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationFailed(f"consistency: proof from {old} to {new} has too few hashes")
    return fr, sr


def verify_consistency(old: int, new: int, proof: Sequence[bytes], old_root: bytes, new_root: bytes) -> None:
    """RFC 9162 §2.1.4.2: raise VerificationFailed unless `proof` shows the tree of size `old` with `old_root`
    is a prefix of the tree of size `new` with `new_root`."""
    if type(old) is not int or type(new) is not int or not 0 <= old <= new:
        raise VerificationFailed(f"consistency: sizes {old!r} -> {new!r} go backwards or are not sizes")
    old_root = _check_hash(old_root, "consistency: old root")
    new_root = _check_hash(new_root, "consistency: new root")
    proof = [_check_hash(p, f"consistency: proof hash {i}") for i, p in enumerate(proof)]
    if old == new:
        if proof:
            raise VerificationFailed("consistency: equal sizes need an empty proof")
        if old_root != new_root:
            raise VerificationFailed(f"consistency: two different roots for the same size {old}")
        return
    if old == 0:
        if proof:
            raise VerificationFailed("consistency: a proof from the empty tree must be empty")
        return
    fr, sr = consistency_roots(old, new, proof, old_root)
    if fr != old_root:
        raise VerificationFailed(f"consistency: proof does not lead to the old root of size {old}")
    if sr != new_root:
        raise VerificationFailed(f"consistency: proof does not lead to the new root of size {new}")
