"""Inclusion proofs under one checkpoint for many entries, with the work they have in common done once.

A node proves every answer it sends under the checkpoint signed with the answer's batch, and the proofs of one
batch's entries share most of their upper hashes. A `CheckpointProver` reads (or folds) each subtree hash once, and
checks each proof against the root only up to the first tree node that an earlier checked proof went through:
above that node the two proofs have the same sibling ranges, so the same hashes from this prover, and so the same
result. A node that differs from the one already checked cannot lead to the root, and fails at once.
"""

from __future__ import annotations

import hashlib

from veriml.errors import InvalidInput, VerificationFailed
from veriml.tlog import merkle
from veriml.tlog.checkpoint import b64

Range = tuple[int, int]  # [start, end) of the leaves under a tree node or a proof hash


class CheckpointProver:
    """Inclusion proofs, each checked, in the tree of `size` leaves whose root is `root`."""

    __slots__ = ("_checked", "_hashes", "_lines", "_read", "root", "size")

    def __init__(self, size: int, root: bytes, read: merkle.HashReader) -> None:
        self.size = merkle.check_size(size)
        self.root = root
        self._read = read
        self._hashes: dict[Range, bytes] = {}  # the hash of each range a proof needed
        self._checked: dict[Range, bytes] = {}  # nodes on a path already checked to lead to the root
        self._lines: dict[Range, str] = {}  # the base64 of each hash, as a tlog-proof's lines write it

    def prove(self, index: int, leaf_hash: bytes) -> list[bytes]:
        """The RFC 9162 inclusion proof (leaf side first) of the entry at `index` whose leaf hash is `leaf_hash`;
        VerificationFailed if the stored hashes do not lead from it to the root."""
        return self._proven(index, leaf_hash)[1]

    def proof_lines(self, index: int, leaf_hash: bytes) -> list[str]:
        """`prove`, each hash in base64: the hash lines of a C2SP tlog-proof."""
        lines = self._lines
        result = []
        for r, value in zip(*self._proven(index, leaf_hash), strict=True):
            line = lines.get(r)
            if line is None:
                line = lines[r] = b64(value)
            result.append(line)
        return result

    def _proven(self, index: int, leaf_hash: bytes) -> tuple[list[Range], list[bytes]]:
        """The proof's ranges and the very hashes checked for them (a range's hash, once read, is never replaced:
        the memo of checked nodes relies on it)."""
        if type(index) is not int or not 0 <= index < self.size:
            raise InvalidInput(f"index {index!r}: not in a tree of size {self.size}")
        ranges = merkle._inclusion_ranges(index, self.size)
        known = self._hashes
        missing = [r for r in ranges if r not in known]
        if missing:
            for r, value in zip(missing, merkle._hashes_of_ranges(missing, self._read), strict=True):
                known.setdefault(r, value)
        proof = [known[r] for r in ranges]
        self._check(index, leaf_hash, ranges, proof)
        return ranges, proof

    def _check(self, index: int, leaf_hash: bytes, ranges: list[Range], proof: list[bytes]) -> None:
        checked = self._checked
        sha256 = hashlib.sha256
        start, end, value = index, index + 1, leaf_hash
        path: list[tuple[Range, bytes]] = []
        for (sibling_start, sibling_end), sibling in zip(ranges, proof, strict=True):
            seen = checked.get((start, end))
            if seen is not None:
                if seen != value:
                    break  # another hash for a node already on a checked path: this one cannot reach the root
                self._remember(path)
                return
            path.append(((start, end), value))
            if sibling_start == end:
                value = sha256(b"\x01" + value + sibling).digest()
                end = sibling_end
            else:
                value = sha256(b"\x01" + sibling + value).digest()
                start = sibling_start
        else:
            if value == self.root:
                path.append(((0, self.size), value))
                self._remember(path)
                return
        raise VerificationFailed(f"inclusion: proof for index {index} does not lead to the root of size {self.size}")

    def _remember(self, path: list[tuple[Range, bytes]]) -> None:
        self._checked.update(path)
