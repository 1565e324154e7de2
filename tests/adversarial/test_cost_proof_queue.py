"""Unbounded work through proof jobs: `verify=proven` queues a zero-knowledge proof (seconds to minutes of CPU and
up to GiBs each), and the queue had no bound. Now at most max_proof_jobs_queued jobs wait; a request beyond is
refused with 503 problem JSON before its inference runs, so it leaves no receipt and no job. Shown with a node
whose prover is a slow stand-in (seconds to run), and with the real EZKL prover (slow: minutes of setup)."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from veriml import devnet, examples
from veriml.client import Client
from veriml.codec import tensors_to_json
from veriml.identity import SigningKey
from veriml.service import Home, Service

SLOW_PROVER = Path(__file__).with_name("cost_slow_prover_node.py")
QUEUED = 2


def flood(url: str) -> tuple[list[httpx.Response], dict]:
    x = tensors_to_json({"x": np.ones((1, 16), np.float32)})
    with httpx.Client(timeout=60) as http:
        answers = [
            http.post(f"{url}/v1/infer", json={"model": "alice/mlp", "inputs": x, "verify": "proven"}) for _ in range(8)
        ]
        return answers, http.get(f"{url}/v1/info").json()


def check_bounded(answers: list[httpx.Response], info: dict) -> None:
    accepted = [a for a in answers if a.status_code == 200]
    refused = [a for a in answers if a.status_code != 200]
    # One job may be running already; at most QUEUED more wait.
    assert QUEUED <= len(accepted) <= QUEUED + 1, [a.status_code for a in answers]
    assert refused and all(a.status_code == 503 for a in refused)
    problem = refused[0].json()
    assert refused[0].headers["content-type"].startswith("application/problem+json")
    assert problem["type"].endswith("/unavailable") and "proof queue: full" in problem["detail"]
    assert len({a.json()["proof_job"] for a in accepted}) == len(accepted)  # one job per receipt
    assert info["log_size"] == len(accepted)  # a refused request ran nothing and signed nothing


def test_proof_queue_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setenv("VERIML_NODE_MAX_PROOF_JOBS_QUEUED", str(QUEUED))  # read by the node's config
    model = examples.save(examples.mlp(), tmp_path / "mlp.onnx")
    network = devnet.up(tmp_path / "net", 1, audit_fraction=0.0,
                        commands={0: [sys.executable, str(SLOW_PROVER)]})  # fmt: skip
    try:
        with Client(network.urls, admin_token=network.admin_token) as client:
            client.publish(model, "alice/mlp", SigningKey.generate("alice"), node=network.urls[0])
        check_bounded(*flood(network.urls[0]))
    finally:
        devnet.down(tmp_path / "net")


@pytest.mark.slow
def test_proof_queue_is_bounded_with_the_real_prover(tmp_path, monkeypatch):
    pytest.importorskip("ezkl")
    monkeypatch.setenv("EZKL_REPO_PATH", str(tmp_path / "ezkl"))
    monkeypatch.setenv("VERIML_NODE_MAX_PROOF_JOBS_QUEUED", str(QUEUED))  # read by the node's config
    home = Home(tmp_path / "publisher")
    SigningKey.generate("alice").save(home.publisher_key_path)
    model = examples.save(examples.mlp(), tmp_path / "mlp.onnx")
    with Service(home) as local:
        manifest = local.publish(model, name="alice/mlp").manifest
        document = local.zk_setup("alice/mlp")
        artifacts = {str(b): local.hub.blobs.read_verified(b) for b in document.body.artifacts.values()}
    network = devnet.up(tmp_path / "net", 1, audit_fraction=0.0)
    try:
        url = network.urls[0]
        with Client(network.urls, admin_token=network.admin_token) as client:
            client.push(manifest, model, node=url)
            client.push_zk(document, lambda digest: artifacts[str(digest)], node=url)
        check_bounded(*flood(url))
    finally:
        devnet.down(tmp_path / "net")
