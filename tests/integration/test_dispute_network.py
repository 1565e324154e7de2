"""Disputes end to end on anvil with real node processes: six nodes register; one answers wrongly but consistently and
discloses a request's data to each auditor once (tests/adversarial/dispute_withholding_node.py), one is honest on
another CPU (tests/adversarial/framing_other_cpu_node.py). An auditor finds the disagreement and opens a dispute by
itself; a committee of three nodes, drawn on chain, gets the data the wrong node withholds from it through the
challenger's relay, re-executes it and commits then reveals without an operator; the wrong node is slashed. A user's
frivolous dispute (from the command line, on an honest node's receipt) loses its bond, and a dispute on the
other-CPU node's honest receipt ends "not comparable" with nobody slashed (the framing attack of
tests/adversarial/test_framing_cpu.py, rerun against disputes). A background thread mines a block every 0.25 s, as a
chain with a block time would."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from eth_account import Account
from typer.testing import CliRunner

from veriml import devnet, examples
from veriml.chain import Chain, Contracts, Deployment, load_account
from veriml.chain.connection import ANVIL_KEY
from veriml.chain.disputes import DisputeGame
from veriml.cli.app import app
from veriml.client import Client
from veriml.client.protocol import ask
from veriml.identity import SigningKey
from veriml.node.auditor_auth import sign_request
from veriml.node.peers import PeerClient
from veriml.tlog import TlogProof

WRONG = Path(__file__).parents[1] / "adversarial" / "dispute_withholding_node.py"
OTHER_CPU = Path(__file__).parents[1] / "adversarial" / "framing_other_cpu_node.py"


def wait_for(condition, timeout: float = 90.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)


@pytest.fixture(scope="module")
def net(tmp_path_factory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("dispute-devnet")
    network = devnet.up(root, 6, checkpoint_interval=0.3, chain="anvil", anchor_interval=0.5, audit_fraction=1.0,
                        commands={4: [sys.executable, str(WRONG)], 5: [sys.executable, str(OTHER_CPU)]})  # fmt: skip
    stop = threading.Event()
    chain = Chain.connect(network.chain["rpc"])

    def mine() -> None:
        while not stop.wait(0.25):
            try:
                chain.w3.provider.make_request("evm_mine", [])
            except Exception:  # the chain stops at teardown
                return

    miner = threading.Thread(target=mine, daemon=True)
    miner.start()
    yield network
    stop.set()
    devnet.down(root)


@pytest.fixture(scope="module")
def world(net, tmp_path_factory):  # type: ignore[no-untyped-def]
    deployment = Deployment.load(Path(net.chain["deployment"]))
    contracts = Contracts(Chain.connect(net.chain["rpc"], deployment.chain_id), deployment)
    wait_for(lambda: len(contracts.nodes()) == 6, what="6 registrations")
    publisher = load_account(ANVIL_KEY)
    path = examples.save(examples.mlp(), tmp_path_factory.mktemp("model") / "mlp.onnx")
    with Client(net.urls, admin_token=net.admin_token) as client:
        manifest = client.publish(path, "alice/mlp", SigningKey.generate("alice"), node=net.urls[0],
                                  chain_account=publisher.address.lower())  # fmt: skip
    contracts.register_model(publisher, manifest)
    return contracts, DisputeGame(contracts)


def infer_at(net, url: str, seed: int):  # type: ignore[no-untyped-def]
    x = {"x": np.random.default_rng(seed).standard_normal((1, 16)).astype(np.float32)}
    with Client(net.urls) as client:
        client.refresh()
        asked = ask(client.manifest("alice/mlp"), x, None)
        _, bundle, index = client._infer_once(asked, [url])
        return client._wait_logged(url, bundle, index)


def account_at(contracts: Contracts, url: str) -> str:
    return next(n.account for n in contracts.nodes() if n.endpoint == url)


def test_wrong_node_is_disputed_and_slashed_by_the_nodes_themselves(net, world):
    contracts, game = world
    wrong = account_at(contracts, net.urls[4])
    started = time.monotonic()
    infer_at(net, net.urls[4], 1)
    state = wait_for(lambda: game.count() >= 1 and game.state(1).status in ("node-wrong", "node-right", "no-verdict")
                     and game.state(1), timeout=120, what="a dispute opened and resolved by the nodes")  # fmt: skip
    latency = time.monotonic() - started
    assert state.status == "node-wrong", state
    assert state.node == wrong and state.challenger != wrong and wrong not in state.committee
    assert state.challenger not in state.committee and len(set(state.committee)) == 3
    assert contracts.node(wrong).slashed and contracts.node(wrong).stake == 0
    # the committee got the data from the challenger: the wrong node withheld it from them
    logs = "".join(Path(node.log).read_text() for node in net.nodes)
    assert f"/v1/disputes/{state.id}/entry" in logs, "the committee should have used the relay"
    # the relay answers the committee only: not a stranger, not an unregistered key
    challenger_url = next(n.endpoint for n in contracts.nodes() if n.account == state.challenger)
    path = f"/v1/disputes/{state.id}/entry"
    stranger = SigningKey.generate("stranger.example")
    challenger_key = PeerClient(challenger_url).info().node
    for headers in ({}, sign_request(stranger, "GET", path, challenger_key)):
        refused = httpx.get(challenger_url + path, headers=headers)
        assert refused.status_code == 403 and refused.headers["content-type"] == "application/problem+json"
    # the challenger and the committee claimed their shares by themselves
    wait_for(lambda: all(game.claimable(a) == 0 for a in (state.challenger, *state.committee)), what="claims")
    print(f"\ndispute latency, inference to slash: {latency:.1f} s")


@pytest.mark.slow
def test_frivolous_dispute_from_the_command_line_loses_its_bond(net, world, tmp_path):
    contracts, game = world
    honest = account_at(contracts, net.urls[0])
    bundle = infer_at(net, net.urls[0], 2)
    index = TlogProof.parse(bundle.log_proof, "bundle log proof").index
    wait_for(lambda: contracts.node(honest).anchored_size > index, what="the entry anchored")
    user = Account.create()
    contracts.chain.fund(load_account(ANVIL_KEY), user.address, 10**18)
    key_file = tmp_path / "user.key"
    key_file.write_text(user.key.hex())
    key_file.chmod(0o600)
    bundle.save(tmp_path / "b.json")
    args = ["chain", "dispute", "open", str(tmp_path / "b.json"), "--rpc", net.chain["rpc"], "--deployment",
            net.chain["deployment"], "--key-file", str(key_file)]  # fmt: skip
    opened = CliRunner().invoke(app, args)
    assert opened.exit_code == 0, opened.output
    dispute_id = int(opened.stdout.split()[1])
    state = wait_for(lambda: game.state(dispute_id).status not in ("open", "voting") and game.state(dispute_id),
                     timeout=120, what="the committee's verdict")  # fmt: skip
    assert state.status == "node-right" and not contracts.node(honest).slashed
    assert game.claimable(user.address) == 0
    shown = CliRunner().invoke(app, ["chain", "dispute", "status", str(dispute_id), "--rpc", net.chain["rpc"],
                                     "--deployment", net.chain["deployment"]])  # fmt: skip
    assert shown.exit_code == 0 and f"dispute {dispute_id}: node-right" in shown.stdout


def cli_dispute(net, bundle, tmp_path, name: str):  # type: ignore[no-untyped-def]
    user = Account.create()
    Chain.connect(net.chain["rpc"]).fund(load_account(ANVIL_KEY), user.address, 10**18)
    key_file = tmp_path / f"{name}.key"
    key_file.write_text(user.key.hex())
    key_file.chmod(0o600)
    bundle.save(tmp_path / f"{name}.json")
    args = ["chain", "dispute", "open", str(tmp_path / f"{name}.json"), "--rpc", net.chain["rpc"], "--deployment",
            net.chain["deployment"], "--key-file", str(key_file)]  # fmt: skip
    opened = CliRunner().invoke(app, args)
    assert opened.exit_code == 0, opened.output
    return user, int(opened.stdout.split()[1])


@pytest.mark.slow
def test_other_cpu_node_is_not_comparable_never_slashed(net, world, tmp_path):
    contracts, game = world
    other = account_at(contracts, net.urls[5])
    bundle = infer_at(net, net.urls[5], 3)
    index = TlogProof.parse(bundle.log_proof, "bundle log proof").index
    wait_for(lambda: contracts.node(other).anchored_size > index, what="the entry anchored")
    user, dispute_id = cli_dispute(net, bundle, tmp_path, "framer")
    state = wait_for(lambda: game.state(dispute_id).status not in ("open", "voting") and game.state(dispute_id),
                     timeout=120, what="the committee's votes")  # fmt: skip
    assert state.status == "no-verdict"
    assert not contracts.node(other).slashed and contracts.node(other).stake > 0
    assert game.claimable(user.address) == state.bond  # the bond back: not comparable is nobody's fault
