"""ZK attacks on real node processes: a node that shifts its proven outputs within the old float bound, and a
multi-input model whose inputs must reach the prover in the model's declared order, not sorted-name order."""

import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

from veriml import devnet, examples
from veriml.cli.app import app
from veriml.client import Client
from veriml.codec import tensors_to_json
from veriml.errors import VerificationFailed
from veriml.hub import BlobStore
from veriml.identity import SigningKey
from veriml.receipts import Bundle
from veriml.service import Home, Service
from veriml.verify import verify_bundle

SHIFTING_NODE = Path(__file__).with_name("zk_shifting_node.py")
OLD_BOUND = 0.05  # the absolute difference the `proven` check used to accept


def two_input_model(path: Path) -> Path:
    """y = b @ Wb + a @ Wa, inputs declared as (b, a): sorted-name order would swap them, and since Wb and Wa
    differ, a swapped assignment gives other outputs."""
    rng = np.random.default_rng(5)
    wb = rng.standard_normal((4, 3)).astype(np.float32)
    wa = (3 * rng.standard_normal((4, 3))).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["b", "wb"], ["pb"]), helper.make_node("MatMul", ["a", "wa"], ["pa"]),
         helper.make_node("Add", ["pb", "pa"], ["y"])],
        "two_inputs",
        [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 4]),
         helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        [numpy_helper.from_array(wb, "wb"), numpy_helper.from_array(wa, "wa")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", examples.OPSET)])
    model.ir_version = examples.IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    """A publisher home with two models and their circuits (logrows 15 or less), pushed to two nodes: node 0
    shifts its proven outputs, node 1 is honest."""
    root = tmp_path_factory.mktemp("zkexact")
    os.environ["EZKL_REPO_PATH"] = str(root / "ezkl")
    home = Home(root / "publisher")
    SigningKey.generate("alice").save(home.publisher_key_path)
    with Service(home) as publisher:
        models = {"alice/mlp": examples.save(examples.mlp(), root / "mlp.onnx"),
                  "alice/two": two_input_model(root / "two.onnx")}  # fmt: skip
        pushed = []
        for name, path in models.items():
            manifest = publisher.publish(path, name=name).manifest
            document = publisher.zk_setup(name)
            assert document.body.logrows <= 15
            pushed.append((manifest, path, document))
        artifacts = {
            str(b): publisher.hub.blobs.read_verified(b) for *_, d in pushed for b in d.body.artifacts.values()
        }
    net = devnet.up(root / "net", 2, commands={0: [sys.executable, str(SHIFTING_NODE)]})
    try:
        with Client(net.urls, admin_token=net.admin_token) as client:
            for url in net.urls:
                for manifest, path, document in pushed:
                    client.push(manifest, path, node=url)
                    client.push_zk(document, lambda digest: artifacts[str(digest)], node=url)
        yield net, home, models
    finally:
        devnet.down(root / "net")


def load_from(home: Home):
    return BlobStore(home.hub_dir / "blobs").read_verified


def proven_by_hand(url: str, model: str, inputs: dict[str, np.ndarray]) -> Bundle:
    """What a node answers to verify=proven, joined with its finished proof job, as the client would hold it."""
    body = {"model": model, "inputs": tensors_to_json(inputs), "verify": "proven"}
    answer = httpx.post(f"{url}/v1/infer", json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    bundle = Bundle.from_json(answer.json()["bundle"])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = httpx.get(f"{url}/v1/proofs/{bundle.receipt.id}").json()
        if job["status"] in ("done", "failed"):
            break
        time.sleep(0.3)
    assert job["status"] == "done", job
    return replace(bundle, zk_proof=job["zk_proof"])


def test_proven_outputs_shifted_within_the_old_bound_are_refused(network, tmp_path):
    net, home, _ = network
    x = {"x": np.random.default_rng(11).standard_normal((1, 16)).astype(np.float32)}

    # The client's proven level refuses the shifted answer: the proof is valid, the outputs are not its.
    with Client([net.urls[0]]) as client, pytest.raises(VerificationFailed, match="is not the proven value"):
        client.infer("alice/mlp", x, verify="proven")

    # The same answer kept as a bundle: signed correctly (the node re-signed its shifted outputs), proof valid,
    # and every output within the old bound of the proven ones. `proven` now refuses it, naming the output.
    shifted = proven_by_hand(net.urls[0], "alice/mlp", x)
    load = load_from(home)
    report = verify_bundle(shifted, level="proven", load_blob=load)
    assert report.check("receipt.signature").status == "pass" and report.check("outputs.digest").status == "pass"
    zk = report.check("zk.proof")
    assert zk.status == "fail" and "output 'y' is not the proven value" in zk.detail, zk.detail
    assert report.verdict == "failed"
    honest = proven_by_hand(net.urls[1], "alice/mlp", x)
    # (level signed plus the proof, as the client checks it: these bundles carry no log proof yet)
    honest_report = verify_bundle(honest, level="signed", load_blob=load)
    assert honest_report.consistent and honest_report.check("zk.proof").status == "pass", honest_report.failures()
    difference = np.abs(shifted.outputs["y"].astype(np.float64) - honest.outputs["y"])
    assert difference.min() > 0.005 and difference.max() < OLD_BOUND  # the attack fits inside the old bound

    shifted.save(tmp_path / "shifted.json")
    cli = CliRunner().invoke(
        app, ["--home", str(home.root), "verify", str(tmp_path / "shifted.json"), "--level", "proven", "--json"]
    )
    assert cli.exit_code == 1, cli.output
    verdict = json.loads(cli.output)
    checks = {check["name"]: check for check in verdict["checks"]}
    assert verdict["verdict"] == "failed" and checks["zk.proof"]["status"] == "fail"
    assert "output 'y' is not the proven value" in checks["zk.proof"]["detail"]


def test_multi_input_model_is_proven_in_declared_order(network, tmp_path):
    net, home, models = network
    rng = np.random.default_rng(12)
    # Inside the range the circuit was calibrated for (setup calibrates on zeros): |y| stays below ~3.
    b, a = (rng.uniform(-0.5, 0.5, (1, 4)).astype(np.float32) for _ in range(2))
    with Client([net.urls[1]]) as client:
        bundle = client.infer("alice/two", {"b": b, "a": a}, verify="proven")
    assert [spec.name for spec in bundle.manifest.body.inputs] == ["b", "a"]  # declared order, not sorted
    load = load_from(home)
    report = verify_bundle(bundle, level="signed", load_blob=load)
    assert report.consistent and report.check("zk.proof").status == "pass", report.failures()

    # The circuit was fed b then a: the proven outputs are the model's on this assignment (up to fixed-point
    # quantization), and far from its outputs on the swapped one.
    session = onnxruntime.InferenceSession(str(models["alice/two"]))
    right = session.run(None, {"b": b, "a": a})[0]
    swapped = session.run(None, {"b": a, "a": b})[0]
    assert np.max(np.abs(bundle.outputs["y"] - right)) < 0.01
    assert np.max(np.abs(bundle.outputs["y"] - swapped)) > 0.5

    # The same proof offered for the inputs swapped fails: its public inputs are b's values, then a's.
    moved = replace(bundle, inputs={"b": a, "a": b})
    zk = verify_bundle(moved, level="proven", load_blob=load).check("zk.proof")
    assert zk.status == "fail" and "public input values are not the bundle's inputs" in zk.detail, zk.detail
