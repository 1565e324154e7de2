"""Every rule of the contracts, on the embedded chain: registration and stake, the exit delay, anchoring (good,
bad, missing proofs, sizes that do not grow), slashing with valid evidence, evidence refused when proofs, roots
or digests do not hold, and double slashing refused."""

from __future__ import annotations

import pytest

from veriml.chain import Contracts, Inclusion
from veriml.codec import Digest
from veriml.errors import Conflict, NotFound, PermissionDenied
from veriml.identity import SigningKey

from .conftest import EXIT_DELAY, MIN_STAKE
from .trees import Tree, chain_manifest, digest, receipt_leaf

EXACT = chain_manifest("0x7e5f4552091a69125d5dfcb7b8c2659029395bdf")  # accounts[0], eth-tester's key 0x…01
MANIFEST = EXACT.id.value
INPUT = digest("input 1")
RUNTIME = digest("onnxruntime 1.20 cpu")


def register(contracts: Contracts, account, name: str, stake: int = MIN_STAKE) -> SigningKey:  # type: ignore[no-untyped-def]
    key = SigningKey.generate(name)
    contracts.register(account, key, f"http://127.0.0.1:9/{name}", stake)
    return key


# ---- registration, stake, endpoint, exit -------------------------------------------------------------------


def test_registration_records_key_origin_endpoint_and_stake(contracts, accounts):
    key = register(contracts, accounts[1], "node1.example", MIN_STAKE * 3)
    node = contracts.node(accounts[1].address)
    assert (node.ed25519, node.origin, node.stake) == (key.public.public, "node1.example", MIN_STAKE * 3)
    assert node.endpoint == "http://127.0.0.1:9/node1.example" and node.active
    assert [n.account for n in contracts.nodes()] == [accounts[1].address]
    assert contracts.chain.balance(contracts.deployment.node_registry) == MIN_STAKE * 3


def test_registration_refuses_low_stake_and_reuse(contracts, accounts):
    with pytest.raises(Conflict, match="reverted: stake below the minimum"):
        register(contracts, accounts[1], "node1.example", MIN_STAKE - 1)
    key = register(contracts, accounts[1], "node1.example")
    with pytest.raises(Conflict, match="account already registered"):
        register(contracts, accounts[1], "node1b.example")
    with pytest.raises(Conflict, match="Ed25519 key registered by another account"):
        contracts.register(accounts[2], key, "http://127.0.0.1:9", MIN_STAKE)
    with pytest.raises(Conflict, match="log origin registered by another account"):
        register(contracts, accounts[2], "node1.example")
    with pytest.raises(NotFound, match="not a registered node"):
        contracts.node(accounts[3].address)


def test_stake_can_grow_and_endpoint_change(contracts, accounts):
    register(contracts, accounts[1], "node1.example")
    contracts.add_stake(accounts[1], 5)
    contracts.set_endpoint(accounts[1], "http://127.0.0.1:10")
    node = contracts.node(accounts[1].address)
    assert (node.stake, node.endpoint) == (MIN_STAKE + 5, "http://127.0.0.1:10")
    with pytest.raises(Conflict, match="not an active node"):
        contracts.set_endpoint(accounts[2], "http://127.0.0.1:11")


def test_exit_only_after_the_delay(contracts, accounts):
    register(contracts, accounts[1], "node1.example")
    with pytest.raises(Conflict, match="request an exit first"):
        contracts.withdraw(accounts[1])
    contracts.request_exit(accounts[1])
    assert contracts.node(accounts[1].address).exit_at > 0
    with pytest.raises(Conflict, match="exit delay has not passed"):
        contracts.withdraw(accounts[1])
    contracts.chain.increase_time(EXIT_DELAY + 1)
    before = contracts.chain.balance(accounts[1].address)
    contracts.withdraw(accounts[1])
    assert contracts.chain.balance(accounts[1].address) > before + MIN_STAKE * 99 // 100  # stake back, less gas
    assert contracts.nodes() == []
    with pytest.raises(Conflict, match="stake already withdrawn"):
        contracts.withdraw(accounts[1])


def test_no_funds_is_a_clear_error(contracts, chain):
    from eth_account import Account

    broke = Account.create()
    with pytest.raises(PermissionDenied, match=f"account {broke.address} has 0 wei"):
        contracts.register(broke, SigningKey.generate("broke"), "http://127.0.0.1:9", MIN_STAKE)


# ---- anchoring -------------------------------------------------------------------------------------------


def grown_tree(size: int) -> Tree:
    return Tree([receipt_leaf(MANIFEST, digest(f"in {n}"), digest(f"out {n}"), RUNTIME, n) for n in range(size)])


def test_anchoring_needs_a_consistency_proof_that_holds(contracts, accounts):
    register(contracts, accounts[1], "node1.example")
    tree = grown_tree(13)
    with pytest.raises(Conflict, match="first anchor takes no proof"):
        contracts.anchor(accounts[1], 5, tree.root(5), [tree.root(5)])
    contracts.anchor(accounts[1], 5, tree.root(5), [])
    for old, new in [(5, 8), (8, 9), (9, 13)]:  # from odd, power-of-two and other sizes
        with pytest.raises(Conflict, match="consistency proof does not hold"):
            contracts.anchor(accounts[1], new, tree.root(new), [])  # missing proof
        bad = tree.consistency(old, new)
        bad[-1] = bytes(32)
        with pytest.raises(Conflict, match="consistency proof does not hold"):
            contracts.anchor(accounts[1], new, tree.root(new), bad)
        contracts.anchor(accounts[1], new, tree.root(new), tree.consistency(old, new))
    node = contracts.node(accounts[1].address)
    assert (node.anchored_size, node.anchored_root) == (13, tree.root(13))
    assert contracts.root(accounts[1].address, 8) == tree.root(8)


def test_anchoring_refuses_a_rewritten_history(contracts, accounts):
    register(contracts, accounts[1], "node1.example")
    tree = grown_tree(6)
    contracts.anchor(accounts[1], 6, tree.root(), [])
    forked = grown_tree(5)
    forked.append(receipt_leaf(MANIFEST, digest("in x"), digest("out x"), RUNTIME, 99))  # leaf 5 differs
    for _ in range(4):
        forked.append(receipt_leaf(MANIFEST, digest("in y"), digest("out y"), RUNTIME, 100))
    with pytest.raises(Conflict, match="consistency proof does not hold"):
        contracts.anchor(accounts[1], 10, forked.root(), forked.consistency(6))


def test_anchoring_refuses_a_smaller_or_equal_size_and_strangers(contracts, accounts):
    register(contracts, accounts[1], "node1.example")
    tree = grown_tree(8)
    contracts.anchor(accounts[1], 8, tree.root(), [])
    with pytest.raises(Conflict, match="tree size must grow"):
        contracts.anchor(accounts[1], 7, tree.root(7), [])
    with pytest.raises(Conflict, match="same tree size with another root"):
        contracts.anchor(accounts[1], 8, tree.root(7), [])
    contracts.anchor(accounts[1], 8, tree.root(8), [])  # the same tree again: a heartbeat
    with pytest.raises(Conflict, match="not a registered node"):
        contracts.anchor(accounts[2], 8, tree.root(), [])


# ---- slashing --------------------------------------------------------------------------------------------


@pytest.fixture()
def cheater(contracts, accounts):  # type: ignore[no-untyped-def]
    """A node that logged two different outputs for the same exact-policy manifest, input and runtime, and
    anchored both: leaf 2 under an anchor of size 4, leaf 6 under an anchor of size 7."""
    contracts.register_model(accounts[0], EXACT)
    register(contracts, accounts[1], "cheat.example", MIN_STAKE * 2)
    tree = grown_tree(2)
    tree.append(receipt_leaf(MANIFEST, INPUT, digest("output A"), RUNTIME, 2))
    tree.append(receipt_leaf(MANIFEST, digest("in 3"), digest("out 3"), RUNTIME, 3))
    contracts.anchor(accounts[1], 4, tree.root(), [])
    tree.append(receipt_leaf(MANIFEST, digest("in 4"), digest("out 4"), RUNTIME, 4))
    tree.append(receipt_leaf(MANIFEST, digest("in 5"), digest("out 5"), RUNTIME, 5))
    tree.append(receipt_leaf(MANIFEST, INPUT, digest("output B"), RUNTIME, 6))
    contracts.anchor(accounts[1], 7, tree.root(), tree.consistency(4))
    first = Inclusion(tree.leaves[2], 2, 4, tuple(tree.inclusion(2, 4)))
    second = Inclusion(tree.leaves[6], 6, 7, tuple(tree.inclusion(6, 7)))
    return accounts[1], tree, first, second


def test_valid_evidence_slashes_and_rewards_the_reporter(contracts, accounts, cheater):
    node, _, first, second = cheater
    assert contracts.verify_inclusion(node.address, first) and contracts.verify_inclusion(node.address, second)
    reporter = accounts[5]
    nonce = bytes(range(32))
    contracts.commit(reporter, contracts.slash_commitment(reporter.address, node.address, first, second, nonce))
    before = contracts.chain.balance(reporter.address)
    receipt = contracts.reveal_slash(reporter, node.address, first, second, nonce)
    slashed = contracts.node(node.address)
    assert slashed.slashed and slashed.stake == 0
    assert contracts.nodes() == []  # no longer discovered
    gas_cost = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert contracts.chain.balance(reporter.address) == before + MIN_STAKE - gas_cost  # half of 2 * MIN_STAKE
    assert contracts.registry.functions.burned().call() == MIN_STAKE
    with pytest.raises(Conflict, match="node already slashed"):  # double slashing
        contracts.slash(accounts[6], node.address, first, second)
    with pytest.raises(Conflict, match="not a registered node"):  # and it cannot anchor any more
        contracts.anchor(node, 8, bytes(32), [])


def test_evidence_within_the_exit_delay_still_slashes(contracts, accounts, cheater):
    node, _, first, second = cheater
    contracts.request_exit(node)
    contracts.slash(accounts[5], node.address, first, second)
    contracts.chain.increase_time(EXIT_DELAY + 1)
    with pytest.raises(Conflict, match="stake was slashed"):
        contracts.withdraw(node)


def replace(inclusion: Inclusion, **changes) -> Inclusion:  # type: ignore[no-untyped-def]
    from dataclasses import replace as dc_replace

    return dc_replace(inclusion, **changes)


def with_digest(inclusion: Inclusion, slot: int, value: bytes) -> Inclusion:
    leaf = inclusion.leaf[: slot * 32] + value + inclusion.leaf[(slot + 1) * 32 :]
    return replace(inclusion, leaf=leaf)


def test_evidence_refused_when_a_proof_does_not_hold(contracts, accounts, cheater):
    node, _, first, second = cheater
    broken = list(second.proof)
    broken[0] = bytes(32)
    with pytest.raises(Conflict, match="second inclusion proof does not hold"):
        contracts.slash(accounts[5], node.address, first, replace(second, proof=tuple(broken)))
    with pytest.raises(Conflict, match="first inclusion proof does not hold"):
        contracts.slash(accounts[5], node.address, replace(first, proof=first.proof[:-1]), second)
    with pytest.raises(Conflict, match="first inclusion proof does not hold"):
        contracts.slash(accounts[5], node.address, replace(first, index=3), second)
    # A leaf the node never logged: the leaf's output digest changed, so its hash is not under the root.
    with pytest.raises(Conflict, match="first inclusion proof does not hold"):
        contracts.slash(accounts[5], node.address, with_digest(first, 2, digest("output C")), second)
    assert contracts.node(node.address).stake == MIN_STAKE * 2


def test_evidence_refused_against_roots_the_node_did_not_anchor(contracts, accounts, cheater):
    node, tree, first, second = cheater
    with pytest.raises(Conflict, match="tree size was not anchored by the node"):
        moved = replace(second, tree_size=6, proof=tuple(tree.inclusion(6, 7)))
        contracts.slash(accounts[5], node.address, first, moved)
    honest = accounts[2]
    register(contracts, honest, "honest.example")
    with pytest.raises(Conflict, match="tree size was not anchored by the node"):  # proofs of another log's tree
        contracts.slash(accounts[5], honest.address, first, second)


def test_evidence_refused_when_digests_do_not_make_equivocation(contracts, accounts, cheater):
    node, _, first, second = cheater
    cases = [
        (with_digest(second, 0, digest("other manifest")), "different manifests"),
        (with_digest(second, 1, digest("other input")), "different inputs"),
        (with_digest(second, 3, digest("other runtime")), "different runtimes"),
        (with_digest(second, 2, first.leaf[64:96]), "outputs are the same"),
    ]
    for changed, reason in cases:
        with pytest.raises(Conflict, match=reason):
            contracts.slash(accounts[5], node.address, first, changed)
    with pytest.raises(Conflict, match="outputs are the same"):
        contracts.slash(accounts[5], node.address, first, first)


def test_evidence_refused_for_a_model_not_under_the_exact_policy(contracts, accounts):
    signed = chain_manifest(accounts[0].address, "alice/float", exact=False)
    tolerance_manifest = signed.id.value
    contracts.register_model(accounts[0], signed)
    register(contracts, accounts[1], "node1.example")
    tree = Tree([receipt_leaf(tolerance_manifest, INPUT, digest(f"out {n}"), RUNTIME, n) for n in range(2)])
    contracts.anchor(accounts[1], 2, tree.root(), [])
    first, second = (Inclusion(tree.leaves[n], n, 2, tuple(tree.inclusion(n))) for n in range(2))
    with pytest.raises(Conflict, match="manifest is not registered as exact"):
        contracts.slash(accounts[5], accounts[1].address, first, second)


# ---- the model registry ----------------------------------------------------------------------------------


def test_model_registry_binds_policy_and_verifier_to_the_publisher(contracts, accounts):
    signed = chain_manifest(accounts[3].address, "bob/cnn")
    manifest = signed.id
    contracts.register_model(accounts[3], signed)
    with pytest.raises(Conflict, match="manifest already registered"):
        contracts.register_model(accounts[3], signed)
    with pytest.raises(Conflict, match="only the model's publisher account"):
        contracts.set_verifier(accounts[4], manifest, accounts[4].address)
    contracts.set_verifier(accounts[3], manifest, accounts[7].address)
    assert contracts.model(manifest) == (accounts[3].address, True, accounts[7].address)
    with pytest.raises(Conflict, match="verifier already set"):
        contracts.set_verifier(accounts[3], manifest, accounts[8].address)
    with pytest.raises(NotFound, match="not registered"):
        contracts.model(Digest("sha256", digest("nothing")))


def test_a_manifests_chain_section_copies_its_policy_and_keeps_other_manifests_bytes():
    import json

    from veriml.errors import InvalidInput
    from veriml.hub.manifest import Manifest

    signed = chain_manifest("0x" + "ab" * 20)
    body = json.loads(signed.canonical)
    assert body["chain"] == {"account": "0x" + "ab" * 20, "exact": True}
    assert Manifest.from_json(body).chain_account == "0x" + "ab" * 20
    body["chain"]["exact"] = False  # a copy that disagrees with the signed policy is no manifest
    with pytest.raises(InvalidInput, match="exact must equal the policy"):
        Manifest.from_json(body)
    with pytest.raises(InvalidInput, match="40 lowercase hex digits"):
        Manifest.from_json({**json.loads(signed.canonical), "chain": {"account": "0x" + "AB" * 20, "exact": True}})
    unbound = chain_manifest(None)
    assert b'"chain"' not in unbound.canonical and unbound.body.chain_account is None
