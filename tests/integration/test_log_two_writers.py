"""Two processes on one home: a running node and a CLI `veriml infer` against the node's home both write its log.
Before, the CLI's entry made every later /v1/infer on the node answer 503 (`UNIQUE constraint failed`) until
restart. Also: a fresh node serves a checkpoint of size 0 (C2SP), and every answer leaves with its proof."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import numpy as np
import pytest

from veriml import devnet, examples
from veriml.client import Client
from veriml.identity import SigningKey
from veriml.receipts import Bundle
from veriml.tlog import SignedCheckpoint, merkle
from veriml.verify import verify_bundle

X = [[0.5] * 16]


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    root = tmp_path_factory.mktemp("two-writers")
    network = devnet.up(root / "net", 1, checkpoint_interval=0.3)
    yield network, root
    devnet.down(root / "net")


def cli(home: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from veriml.cli import main; main()", "--home", home, *args],
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_a_fresh_node_serves_a_checkpoint_of_size_0(node):
    network, _ = node
    answer = httpx.get(f"{network.urls[0]}/checkpoint", timeout=10)
    assert answer.status_code == 200
    signed = SignedCheckpoint.parse(answer.text)
    assert (signed.checkpoint.size, signed.checkpoint.root) == (0, merkle.EMPTY_ROOT)


def test_a_cli_writing_a_running_nodes_log_does_not_break_the_node(node):
    network, root = node
    url, home = network.urls[0], network.nodes[0].home
    model = examples.save(examples.mlp(), root / "mlp.onnx")
    with Client(network.urls, admin_token=network.admin_token) as client:
        client.publish(model, "alice/mlp", SigningKey.generate("alice"))
    before = httpx.post(f"{url}/v1/infer", json={"model": "alice/mlp", "inputs": {"x": X}}, timeout=30)
    assert before.status_code == 200, before.text
    inputs = root / "in.json"
    inputs.write_text(json.dumps({"x": X}))
    done = cli(home, "infer", "alice/mlp", "-i", str(inputs), "-o", str(root / "cli.json"))  # a second process
    assert done.returncode == 0, done.stderr
    cli_bundle = Bundle.load(root / "cli.json")
    assert verify_bundle(cli_bundle, level="logged").consistent
    for _ in range(3):  # the node takes the CLI's entry in and goes on after it
        after = httpx.post(f"{url}/v1/infer", json={"model": "alice/mlp", "inputs": {"x": X}}, timeout=30)
        assert after.status_code == 200, after.text
        bundle = Bundle.from_json(after.json()["bundle"])
        report = verify_bundle(bundle, level="logged", trusted_nodes=[bundle.receipt.body.node.vkey])
        assert report.verified, report.failures()
    assert after.json()["log_index"] == before.json()["log_index"] + 4
    entry = httpx.get(f"{url}/v1/log/entries/{before.json()['log_index'] + 1}", timeout=10).json()
    assert entry["receipt"] == cli_bundle.receipt.to_json()  # the CLI's receipt, served by the node with its proof
    assert entry["proof"] is not None
    verified = cli(home, "log", "verify")
    assert verified.returncode == 0 and "5 entries" in verified.stdout, verified.stderr


def test_answers_leave_with_their_inclusion_proof_at_once(node):
    """No waiting for the cadence: the bundle's proof is under the checkpoint signed with its batch."""
    network, root = node
    with Client(network.urls, admin_token=network.admin_token) as client:
        held = httpx.get(f"{network.urls[0]}/v1/models", timeout=10).json()["models"]
        if "alice/mlp" not in [model["name"] for model in held]:  # run alone (or on another worker than the test
            client.publish(examples.save(examples.mlp(), root / "mlp.onnx"), "alice/mlp", SigningKey.generate("alice"))
            # that publishes it), this test publishes the model itself
        bundle = client.infer("alice/mlp", {"x": np.asarray(X, np.float32)})
    assert bundle.log_proof is not None
    assert verify_bundle(bundle, level="logged").verdict in ("verified", "unanchored")
    assert verify_bundle(bundle, level="logged").consistent
