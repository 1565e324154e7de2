"""Framing an honest node with a model whose honest runs differ: a publisher signs a model with random operators,
so two honest runs disagree, quorum and audit name honest nodes, and (registered exact) an honest node could be
slashed for "equivocation". Such models are refused when published and when a node takes one in from a peer."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from veriml import devnet
from veriml.client import Client
from veriml.codec import TensorSpec
from veriml.codec.clock import utc_timestamp
from veriml.errors import InvalidInput
from veriml.hub import ComparisonPolicy, Manifest
from veriml.identity import Signed, SigningKey
from veriml.service.publish import hash_file

LAX_NODE = Path(__file__).with_name("framing_lax_node.py")
X = {"x": np.ones((1, 4), dtype=np.float32)}


def noise_model() -> onnx.ModelProto:
    """y = x + uniform noise: every run gives another y."""
    graph = helper.make_graph(
        [
            helper.make_node("RandomUniformLike", ["x"], ["noise"], name="noise"),
            helper.make_node("Add", ["x", "noise"], ["y"], name="add"),
        ],
        "noise",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def sign_unchecked(path: Path, name: str, publisher: SigningKey, policy: ComparisonPolicy) -> Signed:
    """The attacker's own publishing tool: a manifest signed without veriml's checks of the file."""
    blob, size = hash_file(path)
    manifest = Manifest(
        name=name,
        version=1,
        blob=blob,
        size=size,
        format="onnx",
        opset=17,
        inputs=(TensorSpec("x", "float32", (1, 4)),),
        outputs=(TensorSpec("y", "float32", (1, 4)),),
        publisher=publisher.public,
        created=utc_timestamp(),
        policy=policy,
    )
    return Signed.sign(manifest, publisher)


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    root = tmp_path_factory.mktemp("devnet")
    network = devnet.up(root, 2, checkpoint_interval=0.3, commands={0: [sys.executable, str(LAX_NODE)]},
                        audit_fraction=0.0)  # fmt: skip
    yield network
    devnet.down(root)


@pytest.fixture(scope="module")
def noise_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "noise.onnx"
    onnx.save(noise_model(), path)
    return path


def test_model_with_random_operators_is_refused_at_publish_and_replication(net, noise_path):
    mallory = SigningKey.generate("mallory")
    lax, honest = net.urls
    # The publisher's own tool (veriml publish) refuses the file before anything is sent.
    with Client(net.urls, admin_token=net.admin_token) as client:
        with pytest.raises(InvalidInput, match=r"operator RandomUniformLike .* draws random numbers"):
            client.publish(noise_path, "mallory/noise", mallory, node=honest)
        # A hand-signed manifest is refused by the honest node under every policy, and nothing is stored.
        for policy in (ComparisonPolicy(), ComparisonPolicy.tolerance(1.0)):
            signed = sign_unchecked(noise_path, "mallory/noise", mallory, policy)
            with pytest.raises(InvalidInput, match=r"RandomUniformLike.*refused under every comparison policy"):
                client.push(signed, noise_path, honest)
        assert "mallory/noise" not in httpx.get(f"{honest}/v1/info").json()["models"]
        assert httpx.get(f"{honest}/v1/blobs/{signed.body.blob}").status_code == 404
        # A node that takes such models (an old or dishonest one) hosts it; the honest node will not take it in.
        client.push(sign_unchecked(noise_path, "mallory/noise", mallory, ComparisonPolicy()), noise_path, lax)
        first = httpx.get(f"{lax}/v1/blobs/{signed.body.blob}")  # the lax node does run it, differently each time
    assert first.status_code == 200
    for _ in range(2):  # the second time the refusal is remembered: no fetch, the same answer
        answer = httpx.post(f"{honest}/v1/infer", json={"model": "mallory/noise", "inputs": {"x": [[1, 1, 1, 1]]}})
        assert answer.status_code == 400, answer.text
        problem = answer.json()
        assert problem["type"].endswith("/invalid-input")
        assert "RandomUniformLike" in problem["detail"] and "two honest runs" in problem["detail"]
    assert httpx.get(f"{honest}/v1/blobs/{signed.body.blob}").status_code == 404
    assert httpx.get(f"{honest}/v1/log/entries/0").status_code == 404  # nothing was signed or logged
