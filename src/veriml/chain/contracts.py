"""A typed client over veriml's contracts: deploy them, register and run nodes, register models, slash.

Python values in, Python values out: digests are `Digest`, keys are `VerifyingKey`, on-chain nodes are
`OnChainNode`. What a deployment is (chain id and contract addresses) is kept as a small JSON file."""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from veriml.chain.build import compile_vyper
from veriml.chain.connection import Chain
from veriml.codec import Digest
from veriml.errors import InvalidInput, NotFound
from veriml.hub.manifest import SignedManifest
from veriml.identity import Domain, SigningKey, VerifyingKey
from veriml.tlog import SignedCheckpoint

ETHER = 10**18
DEFAULT_MIN_STAKE = ETHER // 10
DEFAULT_EXIT_DELAY = 7 * 24 * 3600
DEFAULT_REPORTER_BPS = 5000  # half of a slashed stake goes to whoever sent the evidence, the rest is locked
DEFAULT_MAX_ANCHOR_GAP = 24 * 3600  # a node that anchors less often than this can be reported stale
ZERO32 = bytes(32)


@dataclass(frozen=True)
class DisputeParams:
    """The dispute contract's rules (contracts/Disputes.vy), fixed at deployment. Windows are in blocks except
    the challenge window (seconds from the first anchor covering a receipt; None: half the exit delay, at most a
    day). Shares are in basis points."""

    committee_size: int = 5
    draw_delay: int = 2
    commit_window: int = 20
    reveal_window: int = 20
    challenge_window: int | None = None
    min_bond: int = ETHER // 100
    reporter_bps: int = 5000  # of a wrong node's stake, to the challenger
    committee_bps: int = 2500  # of a wrong node's stake, shared by the majority
    absent_bps: int = 1000  # of the minimum stake, from a member that does not reveal or votes against a verdict
    node_bps: int = 5000  # of a lost bond, to the disputed node (the rest to the majority)


@dataclass(frozen=True)
class Deployment:
    chain_id: int
    node_registry: str
    model_registry: str
    disputes: str | None = None  # contracts/Disputes.vy, when deployed

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> Deployment:
        path = Path(path)
        if not path.is_file():
            raise NotFound(f"chain deployment {path}: no such file (create one with `veriml chain deploy`)")
        try:
            body = json.loads(path.read_text())
            disputes = body.get("disputes")
            return cls(int(body["chain_id"]), str(body["node_registry"]), str(body["model_registry"]),
                       None if disputes is None else str(disputes))  # fmt: skip
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
    stale: bool = False

    @property
    def active(self) -> bool:
        return not self.slashed and not self.withdrawn and not self.stale and self.exit_at == 0


@dataclass(frozen=True)
class Opening:
    """What opens a leaf's two commitments: the receipt's salt and the unsalted input and output digests
    (commitment = SHA-256(salt || digest)). A zero salt opens a receipt v1 leaf, whose digests are unsalted."""

    salt: bytes
    input_digest: bytes
    output_digest: bytes

    @classmethod
    def unsalted(cls, leaf: bytes) -> Opening:
        return cls(ZERO32, leaf[32:64], leaf[64:96])

    def to_json(self) -> dict[str, str]:
        return {"salt": self.salt.hex(), "input": self.input_digest.hex(), "output": self.output_digest.hex()}

    @classmethod
    def from_json(cls, obj: Any) -> Opening:
        opening = cls(bytes.fromhex(obj["salt"]), bytes.fromhex(obj["input"]), bytes.fromhex(obj["output"]))
        if any(len(v) != 32 for v in (opening.salt, opening.input_digest, opening.output_digest)):
            raise ValueError("an opening is three 32-byte values")
        return opening


@dataclass(frozen=True)
class Inclusion:
    """A receipt leaf (the five digests of veriml.receipts.leaf), its index, its inclusion proof in a tree
    of `tree_size` entries that the node anchored, and the opening of its input and output commitments."""

    leaf: bytes  # 160 bytes
    index: int
    tree_size: int
    proof: tuple[bytes, ...]
    opening: Opening | None = None  # None: a receipt v1 leaf, opened by its own digests

    @property
    def digests(self) -> tuple[bytes, ...]:
        return tuple(self.leaf[i : i + 32] for i in range(0, 160, 32))

    def as_abi(self) -> tuple[Any, ...]:
        o = self.opening or Opening.unsalted(self.leaf)
        return (self.digests, self.index, self.tree_size, list(self.proof), (o.salt, o.input_digest, o.output_digest))

    def to_json(self) -> dict[str, Any]:
        body = {"leaf": self.leaf.hex(), "index": self.index, "tree_size": self.tree_size,
                "proof": [p.hex() for p in self.proof]}  # fmt: skip
        if self.opening is not None:
            body["opening"] = self.opening.to_json()
        return body

    @classmethod
    def from_json(cls, obj: Any) -> Inclusion:
        try:
            leaf = bytes.fromhex(obj["leaf"])
            proof = tuple(bytes.fromhex(p) for p in obj["proof"])
            opening = Opening.from_json(obj["opening"]) if "opening" in obj else None
            inclusion = cls(leaf, int(obj["index"]), int(obj["tree_size"]), proof, opening)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"evidence: malformed inclusion ({exc})") from exc
        if len(leaf) != 160 or any(len(p) != 32 for p in proof):
            raise InvalidInput("evidence: a leaf is 160 bytes and proof hashes are 32 bytes")
        return inclusion


@dataclass(frozen=True)
class ShadowCheckpoint:
    """A checkpoint a node signed: its note text (origin, size, base64 root, extensions) and signature."""

    size: int
    root: bytes
    note: bytes
    signature: bytes

    @classmethod
    def of(cls, signed: SignedCheckpoint) -> ShadowCheckpoint:
        if len(signed.note.signatures) != 1:
            raise InvalidInput("shadow evidence: expected a checkpoint with the node's signature only")
        text = signed.note.text.encode("utf-8")
        return cls(signed.checkpoint.size, signed.checkpoint.root, text, signed.note.signatures[0].signature)

    def as_abi(self) -> tuple[Any, ...]:
        return (self.size, self.root, self.note, self.signature)


@dataclass(frozen=True)
class Fork:
    """Where a signed checkpoint and an anchored tree disagree: the same size (a root mismatch, no proofs), or a
    leaf index below both sizes with different leaf hashes, each with its inclusion proof."""

    anchored_size: int
    index: int = 0
    signed_leaf: bytes = ZERO32
    signed_proof: tuple[bytes, ...] = ()
    anchored_leaf: bytes = ZERO32
    anchored_proof: tuple[bytes, ...] = ()

    def as_abi(self) -> tuple[Any, ...]:
        return (self.anchored_size, self.index, self.signed_leaf, list(self.signed_proof), self.anchored_leaf,
                list(self.anchored_proof))  # fmt: skip


def deploy(
    chain: Chain,
    account: Any,
    min_stake: int = DEFAULT_MIN_STAKE,
    exit_delay: int = DEFAULT_EXIT_DELAY,
    reporter_bps: int = DEFAULT_REPORTER_BPS,
    max_anchor_gap: int = DEFAULT_MAX_ANCHOR_GAP,
    disputes: DisputeParams | None = DisputeParams(),
) -> Deployment:
    """Compile the Vyper contracts and deploy the model registry, the node registry and (unless `disputes` is
    None) the dispute contract from `account`, which is named the registry's one slasher."""
    models = compile_vyper("ModelRegistry")
    registry = compile_vyper("NodeRegistry")
    ed25519 = compile_vyper("Ed25519")
    model_address = chain.deploy(account, models.abi, models.bytecode, what="ModelRegistry")
    ed25519_address = chain.deploy(account, ed25519.abi, ed25519.bytecode, what="Ed25519")
    registry_address = chain.deploy(
        account, registry.abi, registry.bytecode, model_address, ed25519_address, min_stake, exit_delay,
        reporter_bps, max_anchor_gap,
        what="NodeRegistry",
    )  # fmt: skip
    disputes_address = None
    window = disputes.challenge_window or min(24 * 3600, exit_delay // 2) if disputes is not None else 0
    if disputes is not None and window > 0:  # an exit delay under 2 s leaves no stake to dispute: none deployed
        game = compile_vyper("Disputes")
        disputes_address = chain.deploy(
            account, game.abi, game.bytecode, registry_address, model_address, disputes.committee_size,
            disputes.draw_delay, disputes.commit_window, disputes.reveal_window, window, disputes.min_bond,
            disputes.reporter_bps, disputes.committee_bps, disputes.absent_bps, disputes.node_bps,
            what="Disputes",
        )  # fmt: skip
        registry_contract = chain.contract(registry_address, registry.abi)
        chain.send(account, registry_contract.functions.set_slasher(disputes_address), what="set the slasher")
    return Deployment(chain.chain_id, registry_address, model_address, disputes_address)


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

    def commit(self, account: Any, commitment: bytes, what: str = "commit") -> Any:
        """Send a commitment and return once a later block exists, so that its reveal can follow."""
        receipt = self.chain.send(account, self.registry.functions.commit(commitment), what=what)
        self.chain.wait_past(int(receipt["blockNumber"]))
        return receipt

    def binding(self, account: str, key: VerifyingKey) -> bytes:
        """The statement a node key signs (under Domain.CHAIN_BINDING) for `account` to register it here."""
        address = self.chain.w3.to_checksum_address(account)
        return bytes(self.registry.functions.binding_message(address, key.name).call())

    def register_signed(self, account: Any, key: VerifyingKey, endpoint: str, stake: int, signature: bytes) -> Any:
        call = self.registry.functions.register(key.public, key.name, endpoint, signature)
        return self.chain.send(account, call, value=stake, what=f"register node {key.name}")

    def register(self, account: Any, key: SigningKey, endpoint: str, stake: int) -> Any:
        """Register the node key from `account`, with the key's signature binding it to that account (the
        contract verifies it: nobody else can register the key, or copy this registration)."""
        payload = self.binding(account.address, key.public)
        prefix = Domain.CHAIN_BINDING.message(b"")
        if not payload.startswith(prefix):
            raise InvalidInput("chain: the registry's binding statement has an unexpected domain")
        signature = key.sign(Domain.CHAIN_BINDING, payload[len(prefix) :])
        return self.register_signed(account, key.public, endpoint, stake, signature)

    def report_stale(self, account: Any, node: str) -> Any:
        call = self.registry.functions.report_stale(self.chain.w3.to_checksum_address(node))
        return self.chain.send(account, call, what=f"report {node} stale")

    def is_stale(self, node: str) -> bool:
        return bool(self.registry.functions.is_stale(self.chain.w3.to_checksum_address(node)).call())

    def max_anchor_gap(self) -> int:
        return int(self.registry.functions.max_anchor_gap().call())

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

    def slash_commitment(self, reporter: str, node: str, first: Inclusion, second: Inclusion, nonce: bytes) -> bytes:
        to_address = self.chain.w3.to_checksum_address
        call = self.registry.functions.slash_commitment(
            to_address(reporter), to_address(node), first.digests, second.digests, nonce
        )
        return bytes(call.call())

    def reveal_slash(self, account: Any, node: str, first: Inclusion, second: Inclusion, nonce: bytes) -> Any:
        address = self.chain.w3.to_checksum_address(node)
        call = self.registry.functions.slash(address, first.as_abi(), second.as_abi(), nonce)
        return self.chain.send(account, call, what=f"slash {node}")

    def slash(self, account: Any, node: str, first: Inclusion, second: Inclusion) -> Any:
        """Commit to the report (which names the reporter), then reveal it in a later block: a copy of the
        revealed evidence cannot be committed before the reveal, and its reward goes to the committer."""
        nonce = secrets.token_bytes(32)
        commitment = self.slash_commitment(account.address, node, first, second, nonce)
        self.commit(account, commitment, what=f"commit to a report on {node}")
        return self.reveal_slash(account, node, first, second, nonce)

    def verify_inclusion(self, node: str, inclusion: Inclusion) -> bool:
        address = self.chain.w3.to_checksum_address(node)
        return bool(self.registry.functions.verify_inclusion(address, inclusion.as_abi()).call())

    def shadow_commitment(self, reporter: str, node: str, note: bytes, nonce: bytes) -> bytes:
        to_address = self.chain.w3.to_checksum_address
        return bytes(
            self.registry.functions.shadow_commitment(to_address(reporter), to_address(node), note, nonce).call()
        )

    def reveal_shadow(self, account: Any, node: str, checkpoint: ShadowCheckpoint, fork: Fork, nonce: bytes) -> Any:
        address = self.chain.w3.to_checksum_address(node)
        call = self.registry.functions.slash_shadow(address, checkpoint.as_abi(), fork.as_abi(), nonce)
        return self.chain.send(account, call, what=f"slash {node} for a shadow history")

    def slash_shadow(self, account: Any, node: str, checkpoint: ShadowCheckpoint, fork: Fork) -> Any:
        """Slash a node whose signed checkpoint contradicts what it anchored (commit, then reveal)."""
        nonce = secrets.token_bytes(32)
        self.commit(account, self.shadow_commitment(account.address, node, checkpoint.note, nonce))
        return self.reveal_shadow(account, node, checkpoint, fork, nonce)

    def verify_ed25519(self, key: bytes, message: bytes, signature: bytes) -> bool:
        """The chain's own Ed25519 check (contracts/Ed25519.vy), as the registry calls it."""
        address = self.registry.functions.ed25519_verifier().call()
        verifier = self.chain.contract(address, compile_vyper("Ed25519").abi)
        return bool(verifier.functions.verify(key, message, signature).call())

    # ---- models ------------------------------------------------------------------------------------------

    def register_model(self, account: Any, manifest: SignedManifest | bytes, verifier: str | None = None) -> Any:
        """Register a model version from its signed manifest (or its canonical bytes): the contract hashes the
        bytes into the manifest id and reads the registering account and exactness from their chain section."""
        canonical = manifest if isinstance(manifest, bytes) else manifest.canonical
        if not isinstance(manifest, bytes) and manifest.body.chain_account is None:
            raise InvalidInput(
                f"manifest {manifest.body.ref}: names no chain account, so no account can register it on chain"
                " (publish it with a chain account)"
            )
        address = verifier or "0x" + "00" * 20
        call = self.models.functions.register_model(canonical, self.chain.w3.to_checksum_address(address))
        return self.chain.send(account, call, what=f"register model {Digest.of(canonical)}")

    def set_verifier(self, account: Any, manifest: Digest, verifier: str) -> Any:
        call = self.models.functions.set_verifier(manifest.value, self.chain.w3.to_checksum_address(verifier))
        return self.chain.send(account, call, what=f"set verifier of {manifest}")

    def model(self, manifest: Digest) -> tuple[str, bool, str]:
        """(publisher account, exact, verifier address) of a registered manifest."""
        publisher, exact, verifier = self.models.functions.models(manifest.value).call()
        if int(publisher, 16) == 0:
            raise NotFound(f"chain: manifest {manifest} is not registered")
        return publisher, exact, verifier
