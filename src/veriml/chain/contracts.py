"""A typed client over veriml's contracts: deploy them, register and run nodes, register models, slash.

Python values in, Python values out: digests are `Digest`, keys are `VerifyingKey`, on-chain nodes are
`OnChainNode`. What a deployment is (chain id and contract addresses) is kept as a small JSON file."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from veriml.chain.build import compile_vyper
from veriml.chain.connection import Chain
from veriml.codec import Digest
from veriml.errors import InvalidInput, NotFound
from veriml.identity import VerifyingKey

ETHER = 10**18
DEFAULT_MIN_STAKE = ETHER // 10
DEFAULT_EXIT_DELAY = 7 * 24 * 3600
DEFAULT_REPORTER_BPS = 5000  # half of a slashed stake goes to whoever sent the evidence, the rest is locked


@dataclass(frozen=True)
class Deployment:
    chain_id: int
    node_registry: str
    model_registry: str

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> Deployment:
        path = Path(path)
        if not path.is_file():
            raise NotFound(f"chain deployment {path}: no such file (create one with `veriml chain deploy`)")
        try:
            body = json.loads(path.read_text())
            return cls(int(body["chain_id"]), str(body["node_registry"]), str(body["model_registry"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInput(f"chain deployment {path}: malformed ({exc})") from exc


@dataclass(frozen=True)
class OnChainNode:
    account: str
    ed25519: bytes
    origin: str
    endpoint: str
    stake: int
    exit_at: int
    anchored_size: int
    anchored_root: bytes
    anchored_at: int
    slashed: bool
    withdrawn: bool

    @property
    def active(self) -> bool:
        return not self.slashed and not self.withdrawn and self.exit_at == 0


@dataclass(frozen=True)
class Inclusion:
    """A receipt leaf (the five digests of veriml.receipts.leaf), its index, and its inclusion proof in a tree
    of `tree_size` entries that the node anchored."""

    leaf: bytes  # 160 bytes
    index: int
    tree_size: int
    proof: tuple[bytes, ...]

    def as_abi(self) -> tuple[Any, ...]:
        digests = tuple(self.leaf[i : i + 32] for i in range(0, 160, 32))
        return (digests, self.index, self.tree_size, list(self.proof))

    def to_json(self) -> dict[str, Any]:
        return {"leaf": self.leaf.hex(), "index": self.index, "tree_size": self.tree_size,
                "proof": [p.hex() for p in self.proof]}  # fmt: skip

    @classmethod
    def from_json(cls, obj: Any) -> Inclusion:
        try:
            leaf = bytes.fromhex(obj["leaf"])
            proof = tuple(bytes.fromhex(p) for p in obj["proof"])
            inclusion = cls(leaf, int(obj["index"]), int(obj["tree_size"]), proof)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"evidence: malformed inclusion ({exc})") from exc
        if len(leaf) != 160 or any(len(p) != 32 for p in proof):
            raise InvalidInput("evidence: a leaf is 160 bytes and proof hashes are 32 bytes")
        return inclusion


def deploy(
    chain: Chain,
    account: Any,
    min_stake: int = DEFAULT_MIN_STAKE,
    exit_delay: int = DEFAULT_EXIT_DELAY,
    reporter_bps: int = DEFAULT_REPORTER_BPS,
) -> Deployment:
    """Compile the Vyper contracts and deploy the model registry and the node registry from `account`."""
    models = compile_vyper("ModelRegistry")
    registry = compile_vyper("NodeRegistry")
    model_address = chain.deploy(account, models.abi, models.bytecode, what="ModelRegistry")
    registry_address = chain.deploy(
        account, registry.abi, registry.bytecode, model_address, min_stake, exit_delay, reporter_bps,
        what="NodeRegistry",
    )  # fmt: skip
    return Deployment(chain.chain_id, registry_address, model_address)


class Contracts:
    """veriml's contracts on one chain."""

    def __init__(self, chain: Chain, deployment: Deployment, check: bool = True) -> None:
        if check:
            chain.check_chain_id(deployment.chain_id)
        self.chain = chain
        self.deployment = deployment
        self.registry = chain.contract(deployment.node_registry, compile_vyper("NodeRegistry").abi)
        self.models = chain.contract(deployment.model_registry, compile_vyper("ModelRegistry").abi)

    # ---- nodes -------------------------------------------------------------------------------------------

    def register(self, account: Any, key: VerifyingKey, endpoint: str, stake: int) -> Any:
        call = self.registry.functions.register(key.public, key.name, endpoint)
        return self.chain.send(account, call, value=stake, what=f"register node {key.name}")

    def add_stake(self, account: Any, wei: int) -> Any:
        return self.chain.send(account, self.registry.functions.add_stake(), value=wei, what="add stake")

    def set_endpoint(self, account: Any, endpoint: str) -> Any:
        return self.chain.send(account, self.registry.functions.set_endpoint(endpoint), what="set endpoint")

    def request_exit(self, account: Any) -> Any:
        return self.chain.send(account, self.registry.functions.request_exit(), what="request exit")

    def withdraw(self, account: Any) -> Any:
        return self.chain.send(account, self.registry.functions.withdraw(), what="withdraw stake")

    def anchor(self, account: Any, size: int, root: bytes, proof: Sequence[bytes]) -> Any:
        call = self.registry.functions.anchor(size, root, list(proof))
        return self.chain.send(account, call, what=f"anchor tree size {size}")

    def node(self, account: str) -> OnChainNode:
        address = self.chain.w3.to_checksum_address(account)
        values = self.chain._call(lambda: self.registry.functions.nodes(address).call(), f"node {address}")
        node = OnChainNode(address, *values)
        if node.ed25519 == bytes(32):
            raise NotFound(f"chain: account {address} is not a registered node")
        return node

    def nodes(self) -> list[OnChainNode]:
        """The listed nodes: registered and neither slashed nor withdrawn (exiting nodes are still listed)."""
        functions = self.registry.functions
        count = self.chain._call(lambda: functions.node_count().call(), "node count")
        accounts = [self.chain._call(lambda i=i: functions.node_list(i).call(), "node list") for i in range(count)]
        return [self.node(account) for account in accounts]

    def root(self, account: str, size: int) -> bytes:
        """The root the account anchored at `size`, or 32 zero bytes if it anchored no tree of that size."""
        return bytes(self.registry.functions.roots(self.chain.w3.to_checksum_address(account), size).call())

    def slash(self, account: Any, node: str, first: Inclusion, second: Inclusion) -> Any:
        call = self.registry.functions.slash(self.chain.w3.to_checksum_address(node), first.as_abi(), second.as_abi())
        return self.chain.send(account, call, what=f"slash {node}")

    def verify_inclusion(self, node: str, inclusion: Inclusion) -> bool:
        address = self.chain.w3.to_checksum_address(node)
        return bool(self.registry.functions.verify_inclusion(address, inclusion.as_abi()).call())

    # ---- models ------------------------------------------------------------------------------------------

    def register_model(self, account: Any, manifest: Digest, exact: bool, verifier: str | None = None) -> Any:
        address = verifier or "0x" + "00" * 20
        call = self.models.functions.register_model(manifest.value, exact, self.chain.w3.to_checksum_address(address))
        return self.chain.send(account, call, what=f"register model {manifest}")

    def set_verifier(self, account: Any, manifest: Digest, verifier: str) -> Any:
        call = self.models.functions.set_verifier(manifest.value, self.chain.w3.to_checksum_address(verifier))
        return self.chain.send(account, call, what=f"set verifier of {manifest}")

    def model(self, manifest: Digest) -> tuple[str, bool, str]:
        """(publisher account, exact, verifier address) of a registered manifest."""
        publisher, exact, verifier = self.models.functions.models(manifest.value).call()
        if int(publisher, 16) == 0:
            raise NotFound(f"chain: manifest {manifest} is not registered")
        return publisher, exact, verifier
