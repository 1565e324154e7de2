"""Slashing evidence from two bundles: receipts of one node for the same manifest, input and runtime with
different outputs, each proven included under a tree the node anchored on chain, each leaf opened by its
bundle's salt and unsalted tensor digests (receipt v2: the leaves hold salted commitments). The proofs are computed from
the node's public tiles and checked here against the anchored root before anything is sent."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from veriml.chain.contracts import Contracts, Fork, Inclusion, Opening, ShadowCheckpoint
from veriml.codec import Digest, tensors_digest
from veriml.errors import InvalidInput, NotFound, Unavailable, VerificationFailed
from veriml.identity import VerifyingKey
from veriml.receipts import Bundle
from veriml.receipts.commitment import commit
from veriml.receipts.leaf import ReceiptLeaf
from veriml.tlog import TlogProof, merkle, verify_note
from veriml.tlog.tile_reader import TileLog


@dataclass(frozen=True)
class Evidence:
    node: str  # the node's Ethereum account
    first: Inclusion
    second: Inclusion

    def to_json(self) -> dict[str, Any]:
        return {"node": self.node, "first": self.first.to_json(), "second": self.second.to_json()}

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> Evidence:
        try:
            body = json.loads(Path(path).read_text())
            return cls(str(body["node"]), Inclusion.from_json(body["first"]), Inclusion.from_json(body["second"]))
        except FileNotFoundError as exc:
            raise InvalidInput(f"evidence {path}: no such file") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInput(f"evidence {path}: malformed ({exc})") from exc

    def submit(self, contracts: Contracts, account: Any) -> Any:
        return contracts.slash(account, self.node, self.first, self.second)


def _log_index(bundle: Bundle, which: str) -> int:
    if bundle.log_proof is None:
        raise InvalidInput(f"evidence: the {which} bundle has no log proof (fetch it once a checkpoint covers it)")
    return TlogProof.parse(bundle.log_proof, f"{which} bundle log proof").index


def opening_of(bundle: Bundle) -> Opening:
    """What opens the bundle's receipt commitments: its salt and the unsalted digests of its tensors."""
    return Opening(bundle.salt, tensors_digest(bundle.inputs).value, tensors_digest(bundle.outputs).value)


def check_equivocation(first: ReceiptLeaf, second: ReceiptLeaf, a: Opening, b: Opening) -> None:
    """The contract's rule, checked first here so that a user learns why before spending gas."""
    if first.manifest != second.manifest:
        raise InvalidInput("evidence: the receipts are for different manifests")
    if first.runtime_digest != second.runtime_digest:
        raise InvalidInput("evidence: the receipts name different runtimes (not comparable)")
    for which, leaf, opening in (("first", first, a), ("second", second, b)):
        opens_input = commit(opening.salt, Digest("sha256", opening.input_digest)) == leaf.input_commitment
        if not opens_input or commit(opening.salt, Digest("sha256", opening.output_digest)) != leaf.output_commitment:
            raise InvalidInput(f"evidence: the {which} bundle's salt and tensors do not open its receipt's commitments")
    if a.input_digest != b.input_digest:
        raise InvalidInput("evidence: the receipts are for different inputs")
    if a.output_digest == b.output_digest:
        raise InvalidInput("evidence: the receipts have the same output: no equivocation")


def build_evidence(contracts: Contracts, first: Bundle, second: Bundle, timeout: float = 10.0) -> Evidence:
    receipts = [bundle.receipt.verified() for bundle in (first, second)]
    if receipts[0].body.node.public != receipts[1].body.node.public:
        raise InvalidInput("evidence: the receipts were signed by different nodes")
    leaves = [ReceiptLeaf.of(receipt) for receipt in receipts]
    openings = [opening_of(first), opening_of(second)]
    check_equivocation(*leaves, *openings)
    _, exact, _ = contracts.model(leaves[0].manifest)
    if not exact:
        raise InvalidInput(f"evidence: manifest {leaves[0].manifest} is not registered on chain as exact")
    indexes = [_log_index(first, "first"), _log_index(second, "second")]
    node_key = receipts[0].body.node
    owner = contracts.registry.functions.key_owner(node_key.public).call()
    if int(owner, 16) == 0:
        raise NotFound(f"evidence: node {node_key.name} is not registered on chain")
    node = contracts.node(owner)
    if node.anchored_size <= max(indexes):
        raise Unavailable(
            f"evidence: node {node.origin} has anchored {node.anchored_size} entries; entry {max(indexes)} is not"
            " anchored yet (wait for its next anchor)"
        )
    inclusions = []
    with TileLog(node.endpoint, node.anchored_size, timeout) as log:
        for index, leaf, opening in zip(indexes, leaves, openings, strict=True):
            proof = log.inclusion_proof(index)
            try:
                merkle.verify_inclusion(
                    index, node.anchored_size, merkle.leaf_hash(leaf.to_bytes()), proof, node.anchored_root
                )
            except VerificationFailed as exc:
                raise VerificationFailed(
                    f"evidence: entry {index} is not under the root {node.origin} anchored at size"
                    f" {node.anchored_size}: {exc}"
                ) from exc
            inclusions.append(Inclusion(leaf.to_bytes(), index, node.anchored_size, tuple(proof), opening))
    return Evidence(node.account, inclusions[0], inclusions[1])


@dataclass(frozen=True)
class ShadowEvidence:
    """A checkpoint a node signed that contradicts what it anchored, and where (see NodeRegistry.slash_shadow)."""

    node: str
    checkpoint: ShadowCheckpoint
    fork: Fork

    def submit(self, contracts: Contracts, account: Any) -> Any:
        return contracts.slash_shadow(account, self.node, self.checkpoint, self.fork)


def shadow_evidence(
    contracts: Contracts, node_key: VerifyingKey, leaf: bytes, proof: TlogProof, timeout: float = 10.0
) -> ShadowEvidence:
    """Evidence from one logged entry: `leaf` at `proof.index` under the checkpoint the node signed in `proof`.
    When the node anchored that size, a different root is the evidence; otherwise the entry at that index in
    the node's latest anchored tree (read from its tiles, checked against the anchored root) must differ."""
    signed = proof.checkpoint
    verify_note(signed.note, [node_key], "evidence checkpoint")
    signature = next(s for s in signed.note.signatures if s.matches(node_key))
    checkpoint = ShadowCheckpoint(
        signed.checkpoint.size, signed.checkpoint.root, signed.note.text.encode("utf-8"), signature.signature
    )
    leaf_hash = merkle.leaf_hash(leaf)
    merkle.verify_inclusion(proof.index, checkpoint.size, leaf_hash, list(proof.hashes), checkpoint.root)
    owner = contracts.registry.functions.key_owner(node_key.public).call()
    if int(owner, 16) == 0:
        raise NotFound(f"evidence: node {node_key.name} is not registered on chain")
    node = contracts.node(owner)
    anchored = contracts.root(node.account, checkpoint.size)
    if anchored != bytes(32):
        if anchored == checkpoint.root:
            raise InvalidInput(f"evidence: {node.origin} anchored this very checkpoint: no shadow history")
        return ShadowEvidence(node.account, checkpoint, Fork(anchored_size=checkpoint.size))
    if proof.index >= node.anchored_size:
        raise Unavailable(
            f"evidence: {node.origin} has anchored {node.anchored_size} entries; entry {proof.index} is not anchored"
            " yet (wait for its next anchor, or report it stale once it misses the gap)"
        )
    with TileLog(node.endpoint, node.anchored_size, timeout) as tiles:
        (anchored_leaf,) = tiles.hashes([(0, proof.index)])
        anchored_proof = tiles.inclusion_proof(proof.index)
    try:
        merkle.verify_inclusion(proof.index, node.anchored_size, anchored_leaf, anchored_proof, node.anchored_root)
    except VerificationFailed as exc:
        raise VerificationFailed(
            f"evidence: {node.origin} serves tiles that do not match its anchored root: {exc}"
        ) from exc
    if anchored_leaf == leaf_hash:
        raise InvalidInput(f"evidence: entry {proof.index} is the same in {node.origin}'s anchored tree: no fork")
    fork = Fork(node.anchored_size, proof.index, leaf_hash, tuple(proof.hashes), anchored_leaf, tuple(anchored_proof))
    return ShadowEvidence(node.account, checkpoint, fork)


def build_shadow_evidence(contracts: Contracts, bundle: Bundle, timeout: float = 10.0) -> ShadowEvidence:
    """Shadow-history evidence from a bundle whose log proof names a checkpoint the node did not anchor."""
    receipt = bundle.receipt.verified()
    if bundle.log_proof is None:
        raise InvalidInput("evidence: the bundle has no log proof (fetch it once a checkpoint covers it)")
    proof = TlogProof.parse(bundle.log_proof, "bundle log proof")
    return shadow_evidence(contracts, receipt.body.node, ReceiptLeaf.of(receipt).to_bytes(), proof, timeout)
