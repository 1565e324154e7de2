"""Slashing evidence from two bundles: receipts of one node for the same manifest, input and runtime with
different outputs, each proven included under a tree the node anchored on chain. The proofs are computed from
the node's public tiles and checked here against the anchored root before anything is sent."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from veriml.chain.contracts import Contracts, Inclusion
from veriml.chain.tiles import TileLog
from veriml.errors import InvalidInput, NotFound, Unavailable, VerificationFailed
from veriml.receipts import Bundle
from veriml.receipts.leaf import ReceiptLeaf
from veriml.tlog import TlogProof, merkle


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


def check_equivocation(first: ReceiptLeaf, second: ReceiptLeaf) -> None:
    """The contract's rule, checked first here so that a user learns why before spending gas."""
    if first.manifest != second.manifest:
        raise InvalidInput("evidence: the receipts are for different manifests")
    if first.input_commitment != second.input_commitment:
        raise InvalidInput("evidence: the receipts are for different inputs")
    if first.runtime_digest != second.runtime_digest:
        raise InvalidInput("evidence: the receipts name different runtimes (not comparable)")
    if first.output_commitment == second.output_commitment:
        raise InvalidInput("evidence: the receipts have the same output: no equivocation")


def build_evidence(contracts: Contracts, first: Bundle, second: Bundle, timeout: float = 10.0) -> Evidence:
    receipts = [bundle.receipt.verified() for bundle in (first, second)]
    if receipts[0].body.node.public != receipts[1].body.node.public:
        raise InvalidInput("evidence: the receipts were signed by different nodes")
    leaves = [ReceiptLeaf.of(receipt) for receipt in receipts]
    check_equivocation(*leaves)
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
        for index, leaf in zip(indexes, leaves, strict=True):
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
            inclusions.append(Inclusion(leaf.to_bytes(), index, node.anchored_size, tuple(proof)))
    return Evidence(node.account, inclusions[0], inclusions[1])
