"""Proven inference through a node: the publisher sets up the circuit and pushes the signed ZK document and its
artifacts; `verify="proven"` queues a proof job; the client checks the proof itself. Jobs survive a restart."""

import os
import signal
import time

import httpx
import numpy as np

from veriml import devnet, examples
from veriml.client import Client
from veriml.errors import NotFound
from veriml.identity import SigningKey
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
    network = devnet.up(tmp_path / "net", 1)
    try:
        x = {"x": np.random.default_rng(2).standard_normal((1, 16)).astype(np.float32)}
        with Client(network.urls, admin_token=network.admin_token) as client:
            client.push(manifest, model)  # the very manifest the ZK document names
            client.push_zk(document, lambda digest: artifacts[str(digest)])
            bundle = client.infer("alice/mlp", x, verify="proven")
            assert bundle.zk_proof is not None

            def load_blob(digest):
                if str(digest) not in artifacts:
                    raise NotFound(f"{digest}")
                return artifacts[str(digest)]

            report = verify_bundle(bundle, level="signed", load_blob=load_blob)
            assert report.check("zk.proof").status == "pass"

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
        unknown = httpx.post(
            f"{network.urls[0]}/v1/infer", json={"model": "alice/none", "inputs": {}, "verify": "proven"}
        )
        assert unknown.status_code == 404
    finally:
        devnet.down(tmp_path / "net")
