"""The dispute game (contracts/Disputes.vy) from Python: open a dispute on a receipt leaf of a node, draw its
committee, commit and reveal a member's vote, resolve, claim what was paid, and ask whether a receipt is final.

A dispute names a receipt leaf by its inclusion under the *first* tree the node anchored that covers it (the
challenge window runs from that anchor); `first_covering_size` finds that tree from the registry's anchor links
and `leaf_inclusion` proves the leaf there from the node's public tiles."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from veriml.chain.build import compile_vyper
from veriml.chain.contracts import Contracts, Inclusion
from veriml.errors import InvalidInput, NotFound, Unavailable, VerificationFailed
from veriml.tlog import merkle
from veriml.tlog.tile_reader import TileLog

STATUS = {0: "none", 1: "open", 2: "voting", 3: "node-right", 4: "node-wrong", 5: "no-verdict"}


@dataclass(frozen=True)
class DisputeState:
    id: int
    node: str
    challenger: str
    leaf_hash: bytes
    manifest: bytes
    claimed: bytes  # the leaf's output commitment
    index: int
    tree_size: int
    bond: int
    exact: bool
    status: str
    draw_block: int
    commit_end: int
    reveal_end: int
    verdict: bytes
    committee: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "node": self.node, "challenger": self.challenger, "status": self.status,
            "leaf_hash": self.leaf_hash.hex(), "manifest": "sha256:" + self.manifest.hex(), "index": self.index,
            "tree_size": self.tree_size, "bond": self.bond, "exact": self.exact, "draw_block": self.draw_block,
            "commit_end": self.commit_end, "reveal_end": self.reveal_end, "verdict": self.verdict.hex(),
            "committee": list(self.committee),
        }  # fmt: skip


@dataclass(frozen=True)
class Vote:
    """A committee member's vote: the output it computed (an exact manifest: SHA-256(salt || output digest); a
    tolerance manifest: the leaf's output commitment or DISAGREE), or not comparable; and the nonce that hides
    it until the reveal."""

    output: bytes
    comparable: bool
    nonce: bytes

    def to_json(self) -> dict[str, Any]:
        return {"output": self.output.hex(), "comparable": self.comparable, "nonce": self.nonce.hex()}

    @classmethod
    def from_json(cls, obj: Any) -> Vote:
        try:
            return cls(bytes.fromhex(obj["output"]), bool(obj["comparable"]), bytes.fromhex(obj["nonce"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"dispute vote: malformed ({exc})") from exc

    @classmethod
    def fresh(cls, output: bytes) -> Vote:
        return cls(output, True, secrets.token_bytes(32))

    @classmethod
    def not_comparable(cls) -> Vote:
        return cls(bytes(32), False, secrets.token_bytes(32))


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


class DisputeGame:
    """The dispute contract of one deployment."""

    def __init__(self, contracts: Contracts) -> None:
        if contracts.deployment.disputes is None:
            raise NotFound("chain deployment has no dispute contract (deploy one with `veriml chain deploy`)")
        self.contracts = contracts
        self.chain = contracts.chain
        self.contract = self.chain.contract(contracts.deployment.disputes, compile_vyper("Disputes").abi)

    def _address(self, account: str) -> str:
        return str(self.chain.w3.to_checksum_address(account))

    def _digests(self, leaf: bytes) -> tuple[bytes, ...]:
        if len(leaf) != 160:
            raise InvalidInput("dispute: a receipt leaf is 160 bytes (five 32-byte digests)")
        return tuple(leaf[i : i + 32] for i in range(0, 160, 32))

    # ---- parameters and reads ----------------------------------------------------------------------------

    def param(self, name: str) -> int:
        return int(getattr(self.contract.functions, name)().call())

    def disagree(self) -> bytes:
        """What a member of a tolerance manifest's committee reveals when the outputs are outside the policy."""
        return bytes(self.chain.w3.keccak(text="veriml/dispute/disagree"))

    def first_covering_size(self, node: str, index: int) -> int:
        """The first tree size the node anchored that covers entry `index` (follows the registry's links from
        its latest anchor back)."""
        registry = self.contracts.registry.functions
        size = self.contracts.node(node).anchored_size
        if index >= size:
            raise Unavailable(f"dispute: node {node} has anchored {size} entries; entry {index} is not anchored yet")
        while True:
            previous = int(registry.anchor_info(self._address(node), size).call()) & (2**64 - 1)
            if previous <= index:
                return size
            size = previous

    def leaf_inclusion(self, node: str, leaf: bytes, index: int, timeout: float = 10.0) -> Inclusion:
        """The leaf's inclusion proof under the first anchored tree that covers it, from the node's tiles,
        checked against the anchored root before anything is sent."""
        size = self.first_covering_size(node, index)
        root = self.contracts.root(node, size)
        with TileLog(self.contracts.node(node).endpoint, size, timeout) as tiles:
            proof = tiles.inclusion_proof(index)
        try:
            merkle.verify_inclusion(index, size, merkle.leaf_hash(leaf), proof, root)
        except VerificationFailed as exc:
            raise VerificationFailed(f"dispute: entry {index} is not this leaf under the root anchored at size"
                                     f" {size}: {exc}") from exc  # fmt: skip
        return Inclusion(leaf, index, size, tuple(proof))

    def state(self, dispute_id: int) -> DisputeState:
        values = self.chain._call(lambda: self.contract.functions.disputes(dispute_id).call(), "dispute")
        if int(values[0], 16) == 0:
            raise NotFound(f"dispute {dispute_id}: no such dispute")
        committee = tuple(self.contract.functions.committee_of(dispute_id).call())
        (
            node,
            challenger,
            lh,
            manifest,
            claimed,
            index,
            size,
            bond,
            exact,
            status,
            draw,
            commit_end,
            reveal_end,
            verdict,
        ) = values
        return DisputeState(dispute_id, node, challenger, bytes(lh), bytes(manifest), bytes(claimed), index, size,
                            bond, exact, STATUS.get(status, str(status)), draw, commit_end, reveal_end, bytes(verdict),
                            committee)  # fmt: skip

    def count(self) -> int:
        return int(self.contract.functions.dispute_count().call())

    def claimable(self, account: str) -> int:
        return int(self.contract.functions.claimable(self._address(account)).call())

    def is_final_undisputed(self, node: str, inclusion: Inclusion) -> bool:
        call = self.contract.functions.is_final_undisputed(
            self._address(node), self._digests(inclusion.leaf), inclusion.index, inclusion.tree_size,
            list(inclusion.proof),
        )  # fmt: skip
        return bool(call.call())

    # ---- transactions ------------------------------------------------------------------------------------

    def open(self, account: Any, node: str, inclusion: Inclusion, bond: int | None = None) -> int:
        """Commit to the dispute (it names this account), then open it in a later block with `bond` wei (None:
        the minimum bond; 0: this account's stake as a node backs it). Returns the dispute id."""
        bond = self.param("min_bond") if bond is None else bond
        nonce = secrets.token_bytes(32)
        digests = self._digests(inclusion.leaf)
        functions = self.contract.functions
        commitment = bytes(functions.open_commitment(account.address, self._address(node), digests, nonce).call())
        receipt = self.chain.send(account, functions.commit_open(commitment), what=f"commit to a dispute on {node}")
        self.chain.wait_past(int(receipt["blockNumber"]))
        call = functions.open(self._address(node), digests, inclusion.index, inclusion.tree_size,
                              list(inclusion.proof), nonce)  # fmt: skip
        receipt = self.chain.send(account, call, value=bond, what=f"dispute entry {inclusion.index} of {node}")
        (event,) = self.contract.events.Opened().process_receipt(receipt)
        return int(event["args"]["id"])

    def draw(self, account: Any, dispute_id: int) -> Any:
        return self.chain.send(account, self.contract.functions.draw(dispute_id), what=f"draw dispute {dispute_id}")

    def wait_block(self, block: int) -> None:
        self.chain.wait_past(block)

    def commit_vote(self, account: Any, dispute_id: int, vote: Vote) -> Any:
        functions = self.contract.functions
        commitment = bytes(
            functions.vote_commitment(account.address, dispute_id, vote.output, vote.comparable, vote.nonce).call()
        )
        return self.chain.send(account, functions.commit_vote(dispute_id, commitment),
                               what=f"commit a vote on dispute {dispute_id}")  # fmt: skip

    def reveal_vote(self, account: Any, dispute_id: int, vote: Vote) -> Any:
        call = self.contract.functions.reveal_vote(dispute_id, vote.output, vote.comparable, vote.nonce)
        return self.chain.send(account, call, what=f"reveal a vote on dispute {dispute_id}")

    def resolve(self, account: Any, dispute_id: int) -> Any:
        return self.chain.send(account, self.contract.functions.resolve(dispute_id),
                               what=f"resolve dispute {dispute_id}")  # fmt: skip

    def claim(self, account: Any) -> Any:
        return self.chain.send(account, self.contract.functions.claim(), what="claim dispute payouts")
