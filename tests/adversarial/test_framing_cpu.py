"""Framing honest nodes by their CPUs: onnxruntime picks kernels by instruction set, so honest nodes on different
CPUs can give different bits. Judged bitwise across CPUs, an honest node would be reported as disagreeing (by a
quorum, and by auditors as evidence). The runtime class carries the CPU features that select kernels, so an exact
policy says "not comparable" across them, and a tolerance policy still compares."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from veriml import devnet, examples
from veriml.client import Client, Disagreement
from veriml.errors import VerificationFailed
from veriml.hub import ComparisonPolicy
from veriml.identity import SigningKey

OTHER_CPU = Path(__file__).with_name("framing_other_cpu_node.py")
X = {"x": np.random.default_rng(4).standard_normal((1, 16)).astype(np.float32)}


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    root = tmp_path_factory.mktemp("devnet")
    network = devnet.up(root, 2, checkpoint_interval=0.3, commands={1: [sys.executable, str(OTHER_CPU)]},
                        audit_fraction=1.0)  # fmt: skip
    yield network
    devnet.down(root)


def test_honest_nodes_on_different_cpus_are_not_comparable_not_disagreeing(net, tmp_path):
    alice = SigningKey.generate("alice")
    path = examples.save(examples.mlp(), tmp_path / "mlp.onnx")
    infos = [httpx.get(f"{url}/v1/info").json() for url in net.urls]
    assert infos[0]["runtime_class"] != infos[1]["runtime_class"]
    assert "avx2" in infos[1]["runtime_class"].split("/")[-1].split("+")
    with Client(net.urls, admin_token=net.admin_token) as client:
        client.publish(path, "alice/mlp", alice, node=net.urls[0])
        client.publish(path, "alice/mlp-tolerant", alice, ComparisonPolicy.tolerance(1e-5), node=net.urls[0])
        with pytest.raises(VerificationFailed, match="not comparable") as refused:
            client.infer("alice/mlp", X, verify="quorum:2")
        assert not isinstance(refused.value, Disagreement)  # no node is named as wrong
        # Under a tolerance the two CPUs' answers are compared, and agree.
        agreed = client.infer("alice/mlp-tolerant", X, verify="quorum:2")
    assert len(agreed.attestations) == 1
    # Each node audits the other's exact receipts: not comparable, never evidence.
    deadline = time.monotonic() + 20
    verdicts: list[list[str]] = [[], []]
    while time.monotonic() < deadline:
        verdicts = [
            [a["verdict"] for a in httpx.get(f"{url}/v1/attestations").json()["attestations"]] for url in net.urls
        ]
        if all(len(v) >= 2 for v in verdicts):
            break
        time.sleep(0.3)
    assert all(len(v) >= 2 for v in verdicts), verdicts
    assert all(set(v) <= {"not-comparable", "agree"} and "not-comparable" in v for v in verdicts), verdicts
    for url in net.urls:
        assert httpx.get(f"{url}/v1/evidence").json()["evidence"] == []
