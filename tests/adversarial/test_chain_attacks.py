"""Attacks on the chain face (issue 10, attacks 5 and 6), each on the embedded chain and on anvil: front-running
the model registry, a consumer fed inputs it did not ask about, another node's key or origin claimed, a slash
report copied or collected by the slashed operator, a node that stops anchoring, and an honest node framed. Each
asserts the contract's specific refusal and that nothing was registered, accepted, paid or slashed wrongly."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from eth_account import Account

from tests.chain.trees import Tree, chain_manifest, digest
from veriml.chain import Chain, Contracts, deploy, local
from veriml.chain.connection import ANVIL_KEY, EMBEDDED_KEYS
from veriml.chain.contracts import Fork, Inclusion, Opening
from veriml.chain.proofs import deploy_consumer
from veriml.codec import Digest
from veriml.devnet import free_port
from veriml.errors import Conflict, NotFound
from veriml.identity import Domain, SigningKey

from .chain_attackers import (
    copy_commitment,
    copy_manifest_registration,
    copy_registration,
    copy_slash_reveal,
    deploy_accept_all_verifier,
    forge_binding,
    shadow_checkpoint,
)
from .weak_key_forger import NEUTRAL, SMALL_ORDER

MIN_STAKE = 10**17
EXIT_DELAY = 3600
GAP = 600  # max_anchor_gap, seconds
RUNTIME = digest("onnxruntime 1.20 cpu avx2")


@dataclass
class World:
    contracts: Contracts
    faucet: Any

    @property
    def chain(self) -> Chain:
        return self.contracts.chain

    def account(self, ether: int = 2) -> Any:
        account = Account.create()
        self.chain.fund(self.faucet, account.address, ether * 10**18)
        return account


@pytest.fixture(scope="module", params=["embedded", "anvil"])
def world(request, tmp_path_factory):  # type: ignore[no-untyped-def]
    started = None
    if request.param == "embedded":
        chain, faucet = Chain.embedded(), Account.from_key(EMBEDDED_KEYS[0])
    else:
        started = local.start("anvil", free_port(), tmp_path_factory.mktemp("anvil") / "anvil.log")
        chain, faucet = Chain.connect(started.rpc), Account.from_key(ANVIL_KEY)
    try:
        deployment = deploy(chain, faucet, MIN_STAKE, EXIT_DELAY, reporter_bps=5000, max_anchor_gap=GAP)
        yield World(Contracts(chain, deployment), faucet)
    finally:
        if started is not None:
            local.stop(started)


def node_key(label: str) -> SigningKey:
    return SigningKey.generate(f"{label}-{os.urandom(4).hex()}.example")  # origins are unique per registry


def commit(salt: bytes, value: bytes) -> bytes:
    return hashlib.sha256(salt + value).digest()


@dataclass(frozen=True)
class Served:
    """One receipt as a node logs it (receipt v2: salted commitments) and the opening a client holds."""

    leaf: bytes
    opening: Opening


def served(manifest: bytes, d_in: bytes, d_out: bytes, n: int, salt: bytes | None = None) -> Served:
    salt = salt or os.urandom(32)
    receipt_id = digest(f"receipt {n} {salt.hex()}")
    leaf = manifest + commit(salt, d_in) + commit(salt, d_out) + RUNTIME + receipt_id
    return Served(leaf, Opening(salt, d_in, d_out))


def logged_node(world: World, receipts: list[Served]) -> tuple[Any, list[Inclusion]]:
    """A registered node that logged `receipts` (among filler entries) and anchored them; their inclusions."""
    account = world.account()
    world.contracts.register(account, node_key("node"), "http://127.0.0.1:9", MIN_STAKE * 2)
    tree = Tree()
    indexes = []
    for n, receipt in enumerate(receipts):
        tree.append(served(digest("filler manifest"), digest(f"in {n}"), digest(f"out {n}"), 1000 + n).leaf)
        indexes.append(tree.append(receipt.leaf))
    size = len(tree.leaves)
    world.contracts.anchor(account, size, tree.root(), [])
    inclusions = [
        Inclusion(r.leaf, i, size, tuple(tree.inclusion(i)), r.opening) for r, i in zip(receipts, indexes, strict=True)
    ]
    return account, inclusions


def exact_model(world: World) -> bytes:
    publisher = world.account()
    signed = chain_manifest(publisher.address, f"alice/m{os.urandom(3).hex()}")
    world.contracts.register_model(publisher, signed)
    return signed.id.value


def equivocating_node(world: World) -> tuple[Any, Inclusion, Inclusion]:
    """A node that answered the same input twice under one runtime with different outputs (two requests, two
    salts), for a model registered as exact."""
    manifest = exact_model(world)
    same_input = digest(f"input {os.urandom(4).hex()}")
    node, (first, second) = logged_node(
        world, [served(manifest, same_input, digest("output A"), 1), served(manifest, same_input, digest("B"), 2)]
    )
    return node, first, second


# ---- 1. front-running the model registry -----------------------------------------------------------------


def test_front_runner_cannot_register_someone_elses_manifest(world):
    contracts = world.contracts
    publisher, attacker = world.account(), world.account()
    signed = chain_manifest(publisher.address, "alice/front")
    everything = deploy_accept_all_verifier(contracts, attacker)

    # The publisher's pending call, copied: the manifest bytes name the publisher's account, not the sender's.
    with pytest.raises(Conflict, match="only the account named in the signed manifest may register it"):
        copy_manifest_registration(contracts, attacker, signed.canonical, everything)
    # The bytes edited to name the attacker, or to flip the policy, are another manifest: another id, which
    # the publisher never signed and no client resolves. The publisher's id stays free.
    for forged in (
        signed.canonical.replace(publisher.address.lower()[2:].encode(), attacker.address.lower()[2:].encode()),
        signed.canonical.replace(b'"exact":true}', b'"exact":false}'),
    ):
        assert Digest.of(forged) != signed.id
    with pytest.raises(NotFound, match="is not registered"):
        contracts.model(signed.id)
    # A manifest that names no account cannot be registered by anyone, even one whose description carries a
    # chain section naming the attacker: a nested field is not at the one place the contract reads.
    planted = f'"chain":{{"account":"{attacker.address.lower()}","exact":true}}'
    unbound = chain_manifest(None, "alice/unbound", description=planted)
    assert planted.replace('"', '\\"').encode() in unbound.canonical
    with pytest.raises(Conflict, match="manifest: has no chain section"):
        copy_manifest_registration(contracts, attacker, unbound.canonical, everything)
    with pytest.raises(NotFound):
        contracts.model(unbound.id)

    # The publisher registers; exactness comes from the signed policy, not from an argument.
    contracts.register_model(publisher, signed)
    assert contracts.model(signed.id) == (publisher.address, True, "0x" + "00" * 20)
    tolerant = chain_manifest(publisher.address, "alice/tolerant", exact=False)
    contracts.register_model(publisher, tolerant)
    assert contracts.model(tolerant.id)[1] is False
    # The attacker's accept-everything verifier cannot be put beside the publisher's model either.
    with pytest.raises(Conflict, match="only the model's publisher account may set its verifier"):
        contracts.set_verifier(attacker, signed.id, everything)
    with pytest.raises(Conflict, match="only the account named in the signed manifest may register it"):
        copy_manifest_registration(contracts, attacker, signed.canonical, everything)
    with pytest.raises(Conflict, match="manifest already registered"):
        contracts.register_model(publisher, signed, everything)
    assert contracts.model(signed.id)[2] == "0x" + "00" * 20


# ---- 2. a consumer fed inputs it did not ask about -------------------------------------------------------


def test_consumer_refuses_a_proof_for_inputs_it_did_not_ask_about(world):
    contracts = world.contracts
    publisher, owner, submitter = world.account(), world.account(), world.account()
    signed = chain_manifest(publisher.address, "alice/oracle")
    # Any input can be proven (a SNARK proves whatever was run); a verifier that accepts everything stands for
    # it here. What is checked is whether the consumer asked for those inputs.
    contracts.register_model(publisher, signed, deploy_accept_all_verifier(contracts, publisher))
    consumer = deploy_consumer(contracts, owner, signed.id, 1)
    send = contracts.chain.send

    send(owner, consumer.functions.ask([11, 12]), what="ask")
    with pytest.raises(Conflict, match="proof is for inputs this consumer did not ask about"):
        send(submitter, consumer.functions.submit(b"proof", [13, 12, 999]), what="submit")  # inputs it chose
    with pytest.raises(Conflict, match="proof is for inputs this consumer did not ask about"):
        send(submitter, consumer.functions.submit(b"proof", [11, 999]), what="submit")  # fewer inputs
    with pytest.raises(Conflict, match="only the consumer's owner may ask"):
        send(submitter, consumer.functions.ask([13, 12]), what="ask")
    assert consumer.functions.accepted().call() == 0

    send(submitter, consumer.functions.submit(b"proof", [11, 12, 7]), what="submit")
    question = contracts.chain.w3.keccak(contracts.chain.w3.codec.encode(["uint256[]"], [[11, 12]]))
    assert consumer.functions.answers(question, 0).call() == 7
    assert consumer.functions.accepted().call() == 1


# ---- 3. another node's key or origin ---------------------------------------------------------------------


def test_account_cannot_register_another_nodes_key_or_origin(world):
    contracts = world.contracts
    node, attacker = world.account(), world.account()
    key = node_key("victim")
    endpoint = "http://127.0.0.1:9/victim"
    binding = contracts.binding(node.address, key.public)
    signature = key.sign(Domain.CHAIN_BINDING, binding[len(Domain.CHAIN_BINDING.message(b"")) :])

    # The node's pending registration, copied: the key signed a statement naming the node's account.
    with pytest.raises(Conflict, match="the Ed25519 key did not sign this account's registration"):
        copy_registration(contracts, attacker, key.public, endpoint, MIN_STAKE, signature)
    # The key and origin (public at /v1/info) claimed with a signature the attacker can make: its own key's.
    forged = forge_binding(contracts, attacker, key.public)
    with pytest.raises(Conflict, match="the Ed25519 key did not sign this account's registration"):
        copy_registration(contracts, attacker, key.public, endpoint, MIN_STAKE, forged)
    with pytest.raises(NotFound, match="not a registered node"):
        contracts.node(attacker.address)

    contracts.register_signed(node, key.public, endpoint, MIN_STAKE, signature)
    assert contracts.node(node.address).ed25519 == key.public.public
    # Once registered, the key and the origin are the node's for good, even with a valid binding of its own.
    with pytest.raises(Conflict, match="Ed25519 key registered by another account"):
        copy_registration(contracts, attacker, key.public, endpoint, MIN_STAKE, signature)
    same_origin = SigningKey.generate(key.name)
    with pytest.raises(Conflict, match="log origin registered by another account"):
        contracts.register(attacker, same_origin, "http://127.0.0.1:9/attacker", MIN_STAKE)
    with pytest.raises(NotFound, match="not a registered node"):
        contracts.node(attacker.address)
    # One registration per account: a node cannot take a second key or origin either.
    with pytest.raises(Conflict, match="account already registered"):
        contracts.register(node, node_key("second"), endpoint, MIN_STAKE)


def test_the_chain_refuses_keys_anyone_can_sign_for(world):
    """Under a key of small order, signatures nobody made pass a bare RFC 8032 check: R = the neutral point and
    S = 0 verify for every message whose hash times the key is the neutral point (all of them for the neutral key,
    one in 2, 4 or 8 for the others). The chain's Ed25519 check, which guards registrations and shadow-history
    slashes, refuses each of the eight small-order points; `cryptography` (OpenSSL) accepts the same forgery."""
    forged, tried = NEUTRAL + bytes(32), 0
    for public in SMALL_ORDER:
        try:
            key = Ed25519PublicKey.from_public_bytes(public)
        except ValueError:
            continue  # OpenSSL does not read it as a point: nothing to forge with
        messages = [m for m in (b"bind %d" % n for n in range(64)) if _openssl_accepts(key, forged, m)]
        if messages:
            tried += 1
            assert not world.contracts.verify_ed25519(public, messages[0], forged), public.hex()
    assert tried >= 8, "fewer forgeries than the eight points of small order"
    honest = node_key("honest")
    assert world.contracts.verify_ed25519(honest.public.public, b"bind", honest.sign_raw(b"bind"))


def _openssl_accepts(key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


# ---- 4. a slash report copied, or collected by the slashed operator ----------------------------------------


def test_copied_slash_report_earns_the_copier_nothing(world):
    contracts = world.contracts
    cheat, first, second = equivocating_node(world)
    reporter, copier = world.account(), world.account()
    nonce = os.urandom(32)
    commitment = contracts.slash_commitment(reporter.address, cheat.address, first, second, nonce)
    contracts.commit(reporter, commitment)

    # The copier copies the commitment, then front-runs the reveal with the reporter's own calldata.
    copy_commitment(contracts, copier, commitment)
    with pytest.raises(Conflict, match="no commitment from this account for this report"):
        copy_slash_reveal(contracts, copier, cheat.address, first, second, nonce)
    # A reveal of its own needs a commitment a block earlier: too late, the reporter's reveal is in.
    own = os.urandom(32)
    contracts.commit(copier, contracts.slash_commitment(copier.address, cheat.address, first, second, own))
    copier_before = contracts.chain.balance(copier.address)
    before = contracts.chain.balance(reporter.address)
    receipt = contracts.reveal_slash(reporter, cheat.address, first, second, nonce)
    paid = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert contracts.chain.balance(reporter.address) == before + MIN_STAKE - paid  # half of the 2x stake
    with pytest.raises(Conflict, match="node already slashed"):
        contracts.reveal_slash(copier, cheat.address, first, second, own)
    assert contracts.chain.balance(copier.address) == copier_before  # refused before sending: not even gas


def test_slashed_operator_cannot_collect_its_own_reward(world):
    contracts = world.contracts
    cheat, first, second = equivocating_node(world)
    nonce = os.urandom(32)
    contracts.commit(cheat, contracts.slash_commitment(cheat.address, cheat.address, first, second, nonce))
    with pytest.raises(Conflict, match="evidence: a node cannot report itself"):
        contracts.reveal_slash(cheat, cheat.address, first, second, nonce)
    assert contracts.node(cheat.address).stake == MIN_STAKE * 2 and not contracts.node(cheat.address).slashed
    reporter = world.account()
    contracts.slash(reporter, cheat.address, first, second)
    slashed = contracts.node(cheat.address)
    assert slashed.slashed and slashed.stake == 0


# ---- 5. shadow history: a node that stops anchoring ------------------------------------------------------


def test_node_that_stops_anchoring_is_reported_stale(world):
    contracts = world.contracts
    node, (inclusion,) = logged_node(world, [served(digest("m"), digest("i"), digest("o"), 1)])
    other = world.account()
    assert contracts.node(node.address).anchored_size == inclusion.tree_size
    with pytest.raises(Conflict, match="node anchored within the allowed gap"):
        contracts.report_stale(other, node.address)
    contracts.chain.increase_time(GAP - 60)
    contracts.anchor(node, inclusion.tree_size, contracts.node(node.address).anchored_root, [])  # heartbeat
    contracts.chain.increase_time(GAP - 60)
    assert not contracts.is_stale(node.address)
    with pytest.raises(Conflict, match="node anchored within the allowed gap"):
        contracts.report_stale(other, node.address)

    contracts.chain.increase_time(120)  # now past the gap since the heartbeat
    assert contracts.is_stale(node.address)
    contracts.report_stale(other, node.address)
    reported = contracts.node(node.address)
    assert reported.stale and reported.exit_at > 0 and not reported.active
    assert node.address not in [n.account for n in contracts.nodes()]
    with pytest.raises(Conflict, match="node was reported stale"):
        contracts.anchor(node, inclusion.tree_size, reported.anchored_root, [])
    with pytest.raises(Conflict, match="exit delay has not passed"):  # still slashable meanwhile
        contracts.withdraw(node)


def test_a_new_node_anchors_the_empty_tree_at_registration(world):
    contracts = world.contracts
    account = world.account()
    contracts.register(account, node_key("fresh"), "http://127.0.0.1:9", MIN_STAKE)
    node = contracts.node(account.address)
    assert (node.anchored_size, node.anchored_root) == (0, hashlib.sha256(b"").digest())
    assert node.anchored_at > 0 and not contracts.is_stale(account.address)


def shadow_node(world: World) -> tuple[Any, SigningKey, Tree, Tree]:
    """A node that anchors tree A (8 entries) and signs checkpoints of tree B, which holds other entries from
    index 3 on: the history it shows to some clients is not the one it committed to on chain."""
    account, key = world.account(), node_key("shadow")
    world.contracts.register(account, key, "http://127.0.0.1:9", MIN_STAKE * 2)
    entries = [served(digest("m"), digest(f"in {n}"), digest(f"out {n}"), n).leaf for n in range(8)]
    anchored, shadow = Tree(entries), Tree(entries[:3])
    for n in range(3, 8):
        shadow.append(served(digest("m"), digest(f"in {n}"), digest(f"other {n}"), n).leaf)
    world.contracts.anchor(account, 4, anchored.root(4), [])
    world.contracts.anchor(account, 8, anchored.root(8), anchored.consistency(4, 8))
    return account, key, anchored, shadow


def test_node_anchoring_one_history_and_serving_another_is_slashable(world):
    contracts = world.contracts
    reporter = world.account()
    # Same size, another root: the signed checkpoint alone is the evidence.
    node, key, _, shadow = shadow_node(world)
    checkpoint = shadow_checkpoint(key, 8, shadow.root(8))
    contracts.slash_shadow(reporter, node.address, checkpoint, Fork(anchored_size=8))
    assert contracts.node(node.address).slashed and contracts.node(node.address).stake == 0

    # Another size: a leaf index where the signed tree and an anchored tree differ, each with its proof.
    node, key, anchored, shadow = shadow_node(world)
    checkpoint = shadow_checkpoint(key, 6, shadow.root(6))
    fork = Fork(
        anchored_size=4, index=3,
        signed_leaf=shadow.hashes[(0, 3)], signed_proof=tuple(shadow.inclusion(3, 6)),
        anchored_leaf=anchored.hashes[(0, 3)], anchored_proof=tuple(anchored.inclusion(3, 4)),
    )  # fmt: skip
    with pytest.raises(Conflict, match="evidence: a node cannot report itself"):
        contracts.slash_shadow(node, node.address, checkpoint, fork)
    before = contracts.chain.balance(reporter.address)
    receipt = contracts.slash_shadow(reporter, node.address, checkpoint, fork)
    paid = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert contracts.chain.balance(reporter.address) > before + MIN_STAKE - paid - 10**16  # half of 2x, less gas
    assert contracts.node(node.address).slashed


def test_honest_node_cannot_be_slashed_for_a_shadow_history(world):
    contracts = world.contracts
    reporter = world.account()
    node, key, anchored, _ = shadow_node(world)
    honest = shadow_checkpoint(key, 8, anchored.root(8))
    with pytest.raises(Conflict, match="evidence: the checkpoint agrees with the anchored root"):
        contracts.slash_shadow(reporter, node.address, honest, Fork(anchored_size=8))
    grown = shadow_checkpoint(key, 6, anchored.root(6))
    same = Fork(4, 3, anchored.hashes[(0, 3)], tuple(anchored.inclusion(3, 6)), anchored.hashes[(0, 3)],
                tuple(anchored.inclusion(3, 4)))  # fmt: skip
    with pytest.raises(Conflict, match="evidence: the leaves are the same"):
        contracts.slash_shadow(reporter, node.address, grown, same)
    # A checkpoint the node never signed (another key), or of another log, is no evidence.
    stranger = shadow_checkpoint(SigningKey.generate(key.name), 8, digest("made up"))
    with pytest.raises(Conflict, match="evidence: the node's key did not sign this checkpoint"):
        contracts.slash_shadow(reporter, node.address, stranger, Fork(anchored_size=8))
    other_log = shadow_checkpoint(node_key("other"), 8, digest("made up"))
    with pytest.raises(Conflict, match="evidence: the note is not a checkpoint of this node's log"):
        contracts.slash_shadow(reporter, node.address, other_log, Fork(anchored_size=8))
    assert not contracts.node(node.address).slashed and contracts.node(node.address).stake == MIN_STAKE * 2


# ---- an honest node cannot be framed ---------------------------------------------------------------------


def test_honest_node_cannot_be_slashed(world):
    contracts = world.contracts
    manifest = exact_model(world)
    x, y = digest(f"x {os.urandom(4).hex()}"), digest("y")
    receipts = [
        served(manifest, x, digest("f(x)"), 1),  # two requests for x (two salts): the same output
        served(manifest, x, digest("f(x)"), 2),
        served(manifest, y, digest("f(y)"), 3),  # another input, another output
    ]
    honest, (a, b, c) = logged_node(world, receipts)
    reporter = world.account()
    with pytest.raises(Conflict, match="evidence: outputs are the same"):
        contracts.slash(reporter, honest.address, a, b)
    with pytest.raises(Conflict, match="evidence: receipts are for different inputs"):
        contracts.slash(reporter, honest.address, a, c)
    # Lying about what a commitment hides: the opening must hash to the leaf's commitments.
    lie = Inclusion(b.leaf, b.index, b.tree_size, b.proof, Opening(b.opening.salt, x, digest("g(x)")))
    with pytest.raises(Conflict, match="evidence: second opening does not match its commitments"):
        contracts.slash(reporter, honest.address, a, lie)
    # Opening salted leaves as receipt v1 ones (zero salt: the commitments themselves as digests): the two
    # requests' commitments differ, so they are not "the same input".
    v1 = [Inclusion(i.leaf, i.index, i.tree_size, i.proof, None) for i in (a, b)]
    with pytest.raises(Conflict, match="evidence: receipts are for different inputs"):
        contracts.slash(reporter, honest.address, *v1)
    node = contracts.node(honest.address)
    assert node.stake == MIN_STAKE * 2 and not node.slashed and node.active
