"""In-memory RFC 9162 trees of receipt leaves for the chain tests: proofs come from veriml.tlog.merkle."""

from __future__ import annotations

import hashlib

from veriml.tlog import merkle


def receipt_leaf(manifest: bytes, input_digest: bytes, output_digest: bytes, runtime: bytes, n: int) -> bytes:
    receipt = hashlib.sha256(b"receipt %d" % n + output_digest).digest()
    return manifest + input_digest + output_digest + runtime + receipt


def digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


class Tree:
    def __init__(self, leaves: list[bytes] | None = None) -> None:
        self.leaves: list[bytes] = []
        self.hashes: dict[tuple[int, int], bytes] = {}
        for leaf in leaves or []:
            self.append(leaf)

    def append(self, leaf: bytes) -> int:
        index = len(self.leaves)
        self.leaves.append(leaf)
        self.hashes[(0, index)] = merkle.leaf_hash(leaf)
        level, i = 0, index
        while i & 1:  # a complete subtree closes: store its root
            self.hashes[(level + 1, i >> 1)] = merkle.node_hash(self.hashes[(level, i - 1)], self.hashes[(level, i)])
            level, i = level + 1, i >> 1
        return index

    def _read(self, keys):  # type: ignore[no-untyped-def]
        return [self.hashes[key] for key in keys]

    def root(self, size: int | None = None) -> bytes:
        return merkle.root_hash(len(self.leaves) if size is None else size, self._read)

    def inclusion(self, index: int, size: int | None = None) -> list[bytes]:
        return merkle.inclusion_proof(index, len(self.leaves) if size is None else size, self._read)

    def consistency(self, old: int, new: int | None = None) -> list[bytes]:
        return merkle.consistency_proof(old, len(self.leaves) if new is None else new, self._read)


def chain_manifest(account: str | None, name: str = "alice/mlp", exact: bool = True, description: str = ""):  # type: ignore[no-untyped-def]
    """A signed manifest naming `account` as the one that may register it on chain (None: no chain section)."""
    from veriml.codec import Digest, TensorSpec
    from veriml.hub import ComparisonPolicy, Manifest
    from veriml.identity import Signed, SigningKey

    publisher = SigningKey.generate(name.split("/")[0])
    manifest = Manifest(
        name=name, version=1, blob=Digest("sha256", digest(f"blob of {name}")), size=1, format="onnx", opset=17,
        inputs=(TensorSpec("x", "float32", (1, 16)),), outputs=(TensorSpec("y", "float32", (1, 4)),),
        publisher=publisher.public, created="2026-01-01T00:00:00Z",
        policy=ComparisonPolicy() if exact else ComparisonPolicy.tolerance(1e-3, 0.0, False),
        description=description, chain_account=None if account is None else account.lower(),
    )  # fmt: skip
    return Signed.sign(manifest, publisher)
