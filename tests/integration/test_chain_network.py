"""The network on a real chain: anvil (from the npm package) started by the test on 127.0.0.1. A 3-node devnet
registers with stakes, finds its peers on chain, serves, anchors its logs; a node that equivocates is slashed
end to end from two bundles a user holds."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest
from eth_account import Account
from typer.testing import CliRunner

from veriml import devnet, examples
from veriml.chain import Chain, Contracts, Deployment, load_account
from veriml.chain.connection import ANVIL_KEY
from veriml.chain.devnet_chain import DEVNET_STAKE
from veriml.chain.evidence import build_evidence
from veriml.cli.app import app
from veriml.client import Client
from veriml.errors import Conflict
from veriml.identity import SigningKey
from veriml.receipts import Bundle
from veriml.verify import verify_bundle

EQUIVOCATING = Path(__file__).with_name("veriml_equivocating_node.py")
X = {"x": np.random.default_rng(5).standard_normal((1, 16)).astype(np.float32)}


def infer_logged_at(client: Client, url: str) -> Bundle:
    """Inference at one given node, with its log proof cosigned by the others (the client picks nodes itself
    otherwise, and needs the other nodes' witness keys for the log proof)."""
    client.refresh()
    _, bundle, index = client._infer_once("alice/mlp", X, None, [url])
    return client._wait_logged(url, bundle, index)


def wait_for(condition, timeout: float = 30.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def net(tmp_path_factory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("chain-devnet")
    network = devnet.up(
        root, 3, checkpoint_interval=0.3, chain="anvil", anchor_interval=0.5,
        commands={2: [sys.executable, str(EQUIVOCATING)]},
    )  # fmt: skip
    yield network
    devnet.down(root)


@pytest.fixture(scope="module")
def contracts(net) -> Contracts:  # type: ignore[no-untyped-def]
    assert net.chain["kind"] == "anvil"
    deployment = Deployment.load(Path(net.chain["deployment"]))
    return Contracts(Chain.connect(net.chain["rpc"], deployment.chain_id), deployment)


def test_nodes_register_with_stake_and_discover_each_other_on_chain(net, contracts):
    nodes = wait_for(lambda: len(contracts.nodes()) == 3 and contracts.nodes(), what="3 registrations")
    assert sorted(n.endpoint for n in nodes) == sorted(net.urls)
    assert all(n.stake == DEVNET_STAKE and n.active for n in nodes)

    def peered() -> bool:
        with Client(net.urls) as client:
            return all(len(info["peers"]) == 2 for info in client.refresh().values())

    wait_for(peered, what="peers from the chain")  # the devnet gave the nodes no static peer list


def test_serve_anchor_and_slash_an_equivocating_node(net, contracts, tmp_path):
    wait_for(lambda: len(contracts.nodes()) == 3, what="3 registrations")
    publisher_account = load_account(ANVIL_KEY)
    path = examples.save(examples.mlp(), tmp_path / "mlp.onnx")
    with Client(net.urls, admin_token=net.admin_token) as client:
        manifest = client.publish(path, "alice/mlp", SigningKey.generate("alice"), node=net.urls[0])
    contracts.register_model(publisher_account, manifest.id, exact=manifest.body.policy.kind == "exact")

    # An honest node serves and anchors.
    with Client(net.urls) as client:
        honest = infer_logged_at(client, net.urls[0])
    assert verify_bundle(honest).consistent
    honest_account = next(n.account for n in contracts.nodes() if n.endpoint == net.urls[0])
    wait_for(lambda: contracts.node(honest_account).anchored_size >= 1, what="the honest node's anchor")

    # The cheating node answers the same input twice, differently; both receipts are signed and logged.
    with Client(net.urls) as client:
        first = infer_logged_at(client, net.urls[2])
        second = infer_logged_at(client, net.urls[2])
    assert first.receipt.body.output_commitment != second.receipt.body.output_commitment
    cheat = next(n for n in contracts.nodes() if n.endpoint == net.urls[2])
    wait_for(lambda: contracts.node(cheat.account).anchored_size >= 2, what="the cheating node's anchor")

    evidence = build_evidence(contracts, first, second)
    assert evidence.node == cheat.account

    # A user holding the two bundles slashes the node from the command line.
    reporter = Account.create()
    contracts.chain.fund(publisher_account, reporter.address, 10**18)
    key_file = tmp_path / "reporter.key"
    key_file.write_text(reporter.key.hex())
    key_file.chmod(0o600)
    first.save(tmp_path / "first.bundle.json")
    second.save(tmp_path / "second.bundle.json")
    args = ["chain", "evidence", str(tmp_path / "first.bundle.json"), str(tmp_path / "second.bundle.json"),
            "--rpc", net.chain["rpc"], "--deployment", net.chain["deployment"], "--key-file", str(key_file),
            "--out", str(tmp_path / "evidence.json"), "--submit"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"slashed {cheat.account}" in result.stdout
    slashed = contracts.node(cheat.account)
    assert slashed.slashed and slashed.stake == 0
    gained = contracts.chain.balance(reporter.address) - 10**18
    assert DEVNET_STAKE // 2 - 10**16 < gained < DEVNET_STAKE // 2  # half the stake, less the gas
    assert cheat.account not in [n.account for n in contracts.nodes()]
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "reverted: evidence: node already slashed" in again.stderr
    with pytest.raises(Conflict, match="node already slashed"):
        evidence.submit(contracts, reporter)

    # The honest nodes drop the slashed node from their peers: discovery follows the registry.
    def dropped() -> bool:
        with Client(net.urls[:2]) as client:
            return all(net.urls[2] not in info["peers"] for info in client.refresh().values())

    wait_for(dropped, what="the slashed node to leave the peer lists")


def test_cli_devnet_runs_on_the_embedded_chain_by_default(tmp_path):
    root = tmp_path / "devnet"
    up = CliRunner().invoke(app, ["devnet", "up", "--nodes", "2", "--dir", str(root)])
    assert up.exit_code == 0, up.output
    try:
        network = devnet.Devnet.load(root)
        assert network.chain["kind"] == "embedded"
        deployment = Deployment.load(Path(network.chain["deployment"]))
        contracts = Contracts(Chain.connect(network.chain["rpc"], deployment.chain_id), deployment)
        wait_for(lambda: len(contracts.nodes()) == 2, what="2 registrations on the embedded chain")
    finally:
        down = CliRunner().invoke(app, ["devnet", "down", "--dir", str(root)])
    assert down.exit_code == 0 and "stopped the embedded chain" in down.stdout
    assert not running(network.chain["pid"], b"veriml.chain.rpc_server")


def running(pid: int, marker: bytes) -> bool:
    try:
        return marker in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def test_cli_devnet_refuses_an_unknown_chain(tmp_path):
    result = CliRunner().invoke(app, ["devnet", "up", "--dir", str(tmp_path / "d"), "--chain", "ganache"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: devnet: --chain 'ganache': expected embedded, anvil or none"
