"""Proven inference through a node: the publisher sets up the circuit and pushes the signed ZK document and its
artifacts; `verify="proven"` queues a proof job; the client checks the proof itself. Jobs survive a restart."""

import os
import signal
import time
from pathlib import Path

import httpx
import numpy as np
from typer.testing import CliRunner

from veriml import devnet, examples
from veriml.cli.app import app
from veriml.client import Client
from veriml.errors import NotFound
from veriml.identity import SigningKey
from veriml.receipts import Bundle
from veriml.service import Home, Service
from veriml.verify import verify_bundle


def test_proof_jobs_are_served_checked_and_survive_a_restart(tmp_path):
    os.environ["EZKL_REPO_PATH"] = str(tmp_path / "ezkl")
    publisher = SigningKey.generate("alice")
    home = Home(tmp_path / "publisher")
    publisher.save(home.publisher_key_path)
    model = examples.save(examples.mlp(), tmp_path / "mlp.onnx")
    with Service(home) as local:  # the publisher's own machine: publish and set up the circuit
        manifest = local.publish(model, name="alice/mlp").manifest
        document = local.zk_setup("alice/mlp")
        artifacts = {str(b): local.hub.blobs.read_verified(b) for b in document.body.artifacts.values()}
    network = devnet.up(tmp_path / "net", 2)
    try:
        x = {"x": np.random.default_rng(2).standard_normal((1, 16)).astype(np.float32)}
        with Client(network.urls, admin_token=network.admin_token) as client:
            client.push(manifest, model, node=network.urls[0])  # the very manifest the ZK document names
            client.push_zk(document, lambda digest: artifacts[str(digest)], node=network.urls[0])
        # node1 holds neither the model nor its circuit: it replicates both from node0, checked, and proves.
        # Through the CLI, which shows the proof job's progress while it waits.
        np.savez(tmp_path / "x.npz", **x)
        result = CliRunner().invoke(
            app,
            ["--home", str(tmp_path / "cli"), "infer", "alice/mlp", "-i", str(tmp_path / "x.npz"),
             "--node", network.urls[1], "--verify", "proven", "-o", str(tmp_path / "proven.json")],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "proof job: done" in result.output
        bundle = Bundle.load(tmp_path / "proven.json")
        assert bundle.zk_proof is not None
        with Client([network.urls[1]]) as client:
            assert bundle.receipt.body.node.vkey == client.refresh()[network.urls[1]]["node"]

            def load_blob(digest):
                if str(digest) not in artifacts:
                    raise NotFound(f"{digest}")
                return artifacts[str(digest)]

            report = verify_bundle(bundle, level="signed", load_blob=load_blob)
            assert report.check("zk.proof").status == "pass"

        # A third party with a fresh home checks the proven bundle: the proof's keys and SRS come from the node,
        # checked by hash (issue 14: nothing fetched them before).
        node_key = bundle.receipt.body.node.vkey
        fresh = ["--home", str(tmp_path / "third-party"), "verify", str(tmp_path / "proven.json"), "--level",
                 "proven", "--publisher", publisher.public.vkey, "--node", node_key]  # fmt: skip
        without = CliRunner().invoke(app, fresh)
        assert without.exit_code == 1 and "skipped" in without.output, without.output
        result = CliRunner().invoke(app, [*fresh, "--from-node", network.urls[0]])
        assert result.exit_code == 0, result.output
        assert "VERIFIED" in result.output

        # A job queued when the node dies is proven after it comes back.
        request = {"model": "alice/mlp", "inputs": {"x": x["x"].tolist()}, "verify": "proven"}
        answer = httpx.post(f"{network.urls[0]}/v1/infer", json=request)
        job = answer.json()["proof_job"]
        # Proving runs in a worker process: the node keeps answering while it proves.
        slowest = 0.0
        for _ in range(10):
            started = time.monotonic()
            assert httpx.get(f"{network.urls[0]}/v1/health").status_code == 200
            slowest = max(slowest, time.monotonic() - started)
            time.sleep(0.2)
        assert slowest < 1.5, f"the node stalled {slowest:.1f} s while proving"
        provers = children_of(network.nodes[0].pid)
        assert provers, "the proof should run in a worker process"
        os.kill(network.nodes[0].pid, signal.SIGKILL)
        restarted = devnet.restart(network.root, 0)
        deadline = time.monotonic() + 120
        status = {}
        while time.monotonic() < deadline:
            status = httpx.get(f"{restarted.urls[0]}/v1/proofs/{job}").json()
            if status["status"] in ("done", "failed"):
                break
            time.sleep(0.5)
        assert status["status"] == "done", status
        assert [pid for pid in provers if Path(f"/proc/{pid}").exists()] == [], "a prover outlived its node"
        unknown = httpx.post(
            f"{network.urls[0]}/v1/infer", json={"model": "alice/none", "inputs": {}, "verify": "proven"}
        )
        assert unknown.status_code == 404
    finally:
        devnet.down(tmp_path / "net")


def children_of(pid: int) -> list[int]:
    children = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            if f"\nPPid:\t{pid}\n" in status.read_text():
                children.append(int(status.parent.name))
        except OSError:
            continue
    return children
