"""Gas of veriml's contracts, with baselines measured in the same run (a plain ether transfer, a bare SSTORE call).

1. Node registration (the node key's Ed25519 signature over the account binding is verified on chain), and
   Ed25519 verification alone by message length.
2. Anchoring as a function of the consistency-proof length: a node anchors size `old`, then `new` with the RFC
   9162 proof between them, taken from a real veriml log of 2^16 receipt leaves.
3. Slashing: commit, then reveal two inclusion proofs (16 hashes each) with their openings; a shadow-history
   slash (a signed checkpoint against an anchored root); a stale report; a heartbeat anchor.
   Disputes (contracts/Disputes.vy, committee of 5): commit to an open, open with a 16-hash inclusion proof,
   draw, a member's vote commit and reveal, resolve (the node slashed, the committee paid), claim.
   Model registration from the canonical manifest bytes (re-hashed on chain).
4. On-chain proof verification: the example consumer checking an EZKL proof for the MLP 16-32-8 (EZKL setup
   takes a while; --no-zk skips it).
5. Anchoring cost per inference: 100 inferences/s with a 10 s cadence is one anchor per 1,000 receipts.

Run: .venv/bin/python benchmarks/bench_chain.py [--chain anvil|embedded] [--no-zk]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path

import numpy as np
from eth_account import Account

from veriml.chain import Chain, Contracts, Inclusion, compile_vyper, deploy, local
from veriml.chain.connection import ANVIL_KEY, EMBEDDED_KEYS
from veriml.chain.contracts import Fork, ShadowCheckpoint
from veriml.codec import Digest, TensorSpec
from veriml.devnet import free_port
from veriml.hub import ComparisonPolicy, Manifest
from veriml.identity import Signed, SigningKey
from veriml.receipts.leaf import LEAF_SIZE
from veriml.tlog import Checkpoint, Log, SignedCheckpoint, sign_note

LOG_SIZE = 1 << 16
BARE_STORE = """
# pragma version ~=0.4.3
value: public(uint256)

@external
def set(v: uint256):
    self.value = v
"""


def leaf(n: int, manifest: bytes, input_digest: bytes, output: bytes | None = None) -> bytes:
    output = output or n.to_bytes(32, "big")
    runtime = b"\x07" * 32
    return manifest + input_digest + output + runtime + (n + 1).to_bytes(32, "big")


def chain_manifest(account: str, name: str, description: str = "") -> Signed[Manifest]:
    publisher = SigningKey.generate("bench")
    manifest = Manifest(
        name=name, version=1, blob=Digest("sha256", b"\x05" * 32), size=1, format="onnx", opset=17,
        inputs=(TensorSpec("x", "float32", (1, 16)),), outputs=(TensorSpec("y", "float32", (1, 8)),),
        publisher=publisher.public, created="2026-01-01T00:00:00Z", policy=ComparisonPolicy(),
        description=description, chain_account=account.lower(),
    )  # fmt: skip
    return Signed.sign(manifest, publisher)


def gas(receipt: dict) -> int:  # type: ignore[type-arg]
    return int(receipt["gasUsed"])


ACCOUNTS: dict[str, object] = {}  # every account this run made: a dispute's committee is drawn among them


def fresh_account(chain: Chain, faucet) -> object:  # type: ignore[no-untyped-def]
    account = Account.create()
    chain.fund(faucet, account.address, 10**18)
    ACCOUNTS[account.address] = account
    return account


def baselines(chain: Chain, faucet) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    """(ether transfer, first SSTORE call (zero to nonzero), later SSTORE call (nonzero to nonzero))."""
    import vyper

    transfer = chain.w3.eth.get_transaction_receipt(
        chain.w3.eth.get_block("latest")["transactions"][-1]
    )  # the funding transfer that fresh_account just made
    compiled = vyper.compile_code(BARE_STORE, output_formats=["abi", "bytecode"])
    address = chain.deploy(faucet, compiled["abi"], bytes.fromhex(compiled["bytecode"][2:]), what="bare store")
    store = chain.contract(address, compiled["abi"])
    first = gas(chain.send(faucet, store.functions.set(1), what="sstore"))
    later = gas(chain.send(faucet, store.functions.set(2), what="sstore"))
    return gas(transfer), first, later


def mine(chain: Chain, blocks: int) -> None:
    if chain.tester is not None:
        chain.tester.mine_blocks(blocks)
    else:
        chain.w3.provider.make_request("anvil_mine", [hex(blocks)])


def dispute_gas(chain: Chain, contracts: Contracts, faucet, log: Log, manifest: bytes) -> list[tuple[str, int]]:  # type: ignore[no-untyped-def]
    """Gas of each step of one dispute that slashes a wrong node (committee of 5, drawn from the ~17 nodes here)."""
    from veriml.chain.disputes import DisputeGame, Vote

    game = DisputeGame(contracts)
    for n in range(4):
        contracts.register(
            fresh_account(chain, faucet), SigningKey.generate(f"member{n}"), "http://127.0.0.1:1", 10**17
        )
    accounts = ACCOUNTS
    wrong = fresh_account(chain, faucet)
    contracts.register(wrong, SigningKey.generate("wrong"), "http://127.0.0.1:1", 10**17)
    contracts.anchor(wrong, LOG_SIZE, log.root(LOG_SIZE), [])
    index = LOG_SIZE - 1
    inclusion = Inclusion(log.entry(index)[0], index, LOG_SIZE, tuple(log.inclusion_proof(index, LOG_SIZE)))
    challenger = fresh_account(chain, faucet)
    functions = game.contract.functions
    nonce = os.urandom(32)
    digests = game._digests(inclusion.leaf)
    commitment = bytes(functions.open_commitment(challenger.address, wrong.address, digests, nonce).call())
    rows = [("dispute: commit to an open", gas(chain.send(challenger, functions.commit_open(commitment), what="c")))]
    mine(chain, 1)
    call = functions.open(wrong.address, digests, index, LOG_SIZE, list(inclusion.proof), nonce)
    opened = chain.send(challenger, call, value=game.param("min_bond"), what="open")
    rows.append((f"dispute: open, inclusion proof of {len(inclusion.proof)} hashes, bond posted", gas(opened)))
    dispute_id = game.count()
    mine(chain, game.param("draw_delay") + 1)
    rows.append((f"dispute: draw a committee of {game.param('committee_size')}", gas(game.draw(faucet, dispute_id))))
    state = game.state(dispute_id)
    right = os.urandom(32)  # the committee's output commitment, other than the leaf's
    votes = {m: Vote(right, True, os.urandom(32)) for m in state.committee}
    commits = [gas(game.commit_vote(accounts[m], dispute_id, v)) for m, v in votes.items()]
    rows.append(("dispute: a member commits its vote", max(commits)))
    mine(chain, max(0, state.commit_end - chain.w3.eth.block_number) + 1)
    reveals = [gas(game.reveal_vote(accounts[m], dispute_id, v)) for m, v in votes.items()]
    rows.append(("dispute: a member reveals its vote", max(reveals)))
    rows.append(("dispute: resolve (node wrong: stake taken, 5 members paid)", gas(game.resolve(faucet, dispute_id))))
    rows.append(("dispute: claim a payout", gas(game.claim(challenger))))
    assert game.state(dispute_id).status == "node-wrong"
    total = sum(used for _, used in rows[:3]) + sum(commits) + sum(reveals) + rows[-2][1] + rows[-1][1]
    rows.append(("dispute: all steps (open to resolve, 5 commits and reveals, one claim)", total))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chain", choices=["anvil", "embedded"], default="anvil")
    parser.add_argument("--no-zk", action="store_true", help="skip the EZKL setup and on-chain verification")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-chain-"))
    started = None
    if args.chain == "anvil":
        started = local.start("anvil", free_port(), workdir / "anvil.log")
        chain, faucet = Chain.connect(started.rpc), Account.from_key(ANVIL_KEY)
    else:
        chain, faucet = Chain.embedded(), Account.from_key(EMBEDDED_KEYS[0])
    try:
        run(chain, faucet, workdir, not args.no_zk)
    finally:
        if started is not None:
            local.stop(started)


def run(chain: Chain, faucet, workdir: Path, zk: bool) -> None:  # type: ignore[no-untyped-def]
    print(f"chain: {chain.where} (id {chain.chain_id}); {platform.python_version()} on {platform.machine()}")
    contracts = Contracts(chain, deploy(chain, faucet))
    fresh_account(chain, faucet)
    transfer, first_store, later_store = baselines(chain, faucet)
    rows: list[tuple[str, int]] = [
        ("baseline: ether transfer", transfer),
        ("baseline: bare SSTORE call, zero to nonzero", first_store),
        ("baseline: bare SSTORE call, nonzero to nonzero", later_store),
    ]

    operator = fresh_account(chain, faucet)
    node_key = SigningKey.generate("veriml-node-0123456789ab")
    registration = gas(contracts.register(operator, node_key, "http://127.0.0.1:1", 10**17))
    rows.append(("register a node (stake, key, origin, endpoint, Ed25519 binding checked)", registration))
    verifier = chain.contract(contracts.registry.functions.ed25519_verifier().call(), compile_vyper("Ed25519").abi)
    for length in (0, 136, 400):
        message = os.urandom(length)
        used = verifier.functions.verify(node_key.public.public, message, node_key.sign_raw(message)).estimate_gas()
        rows.append((f"Ed25519 verify alone, {length}-byte message (estimate)", int(used) - 21000))
    for label, description in (("small", ""), ("4 KiB description", "x" * 4096)):
        signed = chain_manifest(faucet.address, f"bench/{label.split()[0]}", description=description)
        used = gas(contracts.register_model(faucet, signed))
        rows.append((f"register a model from its manifest ({label}, {len(signed.canonical):,} bytes)", used))

    manifest, same_input = chain_manifest(faucet.address, "bench/mlp"), b"\x02" * 32
    contracts.register_model(faucet, manifest)
    manifest = manifest.id.value
    with Log(workdir / "log.sqlite", SigningKey.generate("bench.example/log")) as log:
        log.append_batch([(leaf(n, manifest, n.to_bytes(32, "big")), b"") for n in range(LOG_SIZE - 2)])
        # Two receipts for the same input with different outputs, at the end of the log: the slashing case.
        log.append_batch([(leaf(LOG_SIZE - 2, manifest, same_input, b"\xaa" * 32), b""),
                          (leaf(LOG_SIZE - 1, manifest, same_input, b"\xbb" * 32), b"")])  # fmt: skip
        log.integrate()
        first_anchor = None
        anchors = []
        for n, (old, new) in enumerate([(1000, 2000), (3, 4), (5, 8), (7, 15), (63, 1000), (1000, 1001),
                                        (4095, 5000), (2**15 - 1, LOG_SIZE - 1), (3, LOG_SIZE - 1)]):  # fmt: skip
            account = fresh_account(chain, faucet)
            contracts.register(account, SigningKey.generate(f"anchor{n}"), "http://127.0.0.1:1", 10**17)
            receipt = contracts.anchor(account, old, log.root(old), [])
            first_anchor = first_anchor or gas(receipt)
            proof = log.consistency_proof(old, new)
            anchors.append((len(proof), old, new, gas(contracts.anchor(account, new, log.root(new), proof))))
        rows.append(("first anchor (no proof)", first_anchor))
        for length, old, new, used in sorted(anchors):
            rows.append((f"anchor {old} -> {new}: consistency proof of {length} hashes", used))

        cheat = fresh_account(chain, faucet)
        cheat_key = SigningKey.generate("cheat")
        contracts.register(cheat, cheat_key, "http://127.0.0.1:1", 10**17)
        contracts.anchor(cheat, LOG_SIZE, log.root(LOG_SIZE), [])
        heartbeat = gas(contracts.anchor(cheat, LOG_SIZE, log.root(LOG_SIZE), []))
        rows.append(("heartbeat anchor (same tree again)", heartbeat))
        a, b = (Inclusion(log.entry(i)[0], i, LOG_SIZE, tuple(log.inclusion_proof(i, LOG_SIZE)))
                for i in (LOG_SIZE - 2, LOG_SIZE - 1))  # fmt: skip
        assert len(a.leaf) == LEAF_SIZE
        nonce = os.urandom(32)
        commit = gas(contracts.commit(faucet, contracts.slash_commitment(faucet.address, cheat.address, a, b, nonce)))
        rows.append(("slash report: commit", commit))
        reveal = gas(contracts.reveal_slash(faucet, cheat.address, a, b, nonce))
        rows.append((f"slash report: reveal two inclusion proofs of {len(a.proof)} hashes (v1 openings)", reveal))

        shadow = fresh_account(chain, faucet)
        shadow_key = SigningKey.generate("veriml-node-shadow0000000")
        contracts.register(shadow, shadow_key, "http://127.0.0.1:1", 10**17)
        contracts.anchor(shadow, 2000, log.root(2000), [])
        checkpoint = Checkpoint(shadow_key.name, 2000, log.root(1999))
        signed = ShadowCheckpoint.of(SignedCheckpoint(checkpoint, sign_note(checkpoint.text(), shadow_key)))
        nonce = os.urandom(32)
        contracts.commit(faucet, contracts.shadow_commitment(faucet.address, shadow.address, signed.note, nonce))
        used = gas(contracts.reveal_shadow(faucet, shadow.address, signed, Fork(anchored_size=2000), nonce))
        rows.append(("shadow-history slash: reveal a signed checkpoint against an anchored root", used))

        rows.extend(dispute_gas(chain, contracts, faucet, log, manifest))

        idle = fresh_account(chain, faucet)
        contracts.register(idle, SigningKey.generate("idle"), "http://127.0.0.1:1", 10**17)
        chain.increase_time(contracts.max_anchor_gap() + 1)
        rows.append(("report a stale node", gas(contracts.report_stale(faucet, idle.address))))

    if zk:
        direct, consumer = zk_gas(chain, faucet, contracts, workdir)
        rows.append(("EZKL proof (MLP 16-32-8): the verifier alone (estimate)", direct))
        rows.append(("EZKL proof: consumer submit (verify + store 8 outputs)", consumer))

    width = max(len(label) for label, _ in rows)
    print(f"\n{'what':{width}}  {'gas':>10}  {'/ transfer':>10}  {'/ SSTORE call':>13}")
    for label, used in rows:
        print(f"{label:{width}}  {used:>10,}  {used / transfer:>10.2f}  {used / first_store:>13.2f}")

    typical = next(used for length, old, new, used in anchors if (old, new) == (1000, 2000))
    per_anchor = 100 * 10
    print(f"\nanchoring at 100 inferences/s with a 10 s cadence: one anchor per {per_anchor:,} inferences")
    print(f"  anchor 1000 -> 2000 costs {typical:,} gas: {typical / per_anchor:.1f} gas per inference"
          f" ({typical / per_anchor / transfer:.4f} of an ether transfer)")  # fmt: skip
    print("  per node: 8,640 anchors a day whatever the load; at 1 gwei that is"
          f" {8640 * typical / 1e9:.3f} ether a day")  # fmt: skip


def zk_gas(chain: Chain, faucet, contracts: Contracts, workdir: Path) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """(gas of the verifier called directly with EZKL's calldata, gas of the consumer's submit)."""
    from veriml import examples
    from veriml.chain.proofs import deploy_consumer, deploy_verifier, split_calldata
    from veriml.service import Home, Service

    os.environ.setdefault("EZKL_REPO_PATH", str(workdir / "ezkl"))
    home = Home(workdir / "home")
    SigningKey.generate("alice").save(home.publisher_key_path)
    with Service(home) as service:
        service.publish(
            examples.save(examples.mlp(), workdir / "mlp.onnx"), name="alice/mlp", chain_account=faucet.address.lower()
        )
        print("EZKL setup and proof for the MLP (about 15 s)...")
        service.zk_setup("alice/mlp")
        x = {"x": np.random.default_rng(4).standard_normal((1, 16)).astype(np.float32)}
        bundle = service.prove(service.infer("alice/mlp", x, prove=True, circuit=True))
        source = service.zk_evm_verifier("alice/mlp", workdir / "Verifier.sol")
        calldata = service.zk_evm_calldata(bundle)
    verifier = deploy_verifier(chain, faucet, source)
    contracts.register_model(faucet, bundle.manifest, verifier=verifier)
    outputs = int(np.prod(bundle.outputs["y"].shape))
    consumer = deploy_consumer(contracts, faucet, bundle.manifest.id, outputs)
    direct = chain.w3.eth.estimate_gas({"from": faucet.address, "to": verifier, "data": calldata})
    proof, instances = split_calldata(chain, calldata)
    chain.send(faucet, consumer.functions.ask(instances[: len(instances) - outputs]), what="ask")
    return int(direct), gas(chain.send(faucet, consumer.functions.submit(proof, instances), what="submit"))


if __name__ == "__main__":
    main()
