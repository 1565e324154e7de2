"""Framing and cost limits, checked without processes: random operators anywhere in a model are refused, runtime
classes split on the CPU flags that pick kernels, nested-list inputs are sized before conversion."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from veriml.codec import tensors_digest
from veriml.errors import InvalidInput
from veriml.hub.onnx_model import check_onnx_bytes, nondeterministic_op
from veriml.runtime import RuntimeFingerprint

X = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
Y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])


def _model(nodes, initializers=(), functions=(), opset=17):
    graph = helper.make_graph(nodes, "g", [X], [Y], initializer=list(initializers))
    imports = [helper.make_opsetid("", opset)] + [helper.make_opsetid(f.domain, 1) for f in functions]
    return helper.make_model(graph, opset_imports=imports, functions=list(functions))


@pytest.mark.parametrize("op", ["RandomUniformLike", "RandomNormalLike", "Bernoulli"])
def test_random_operators_in_the_main_graph_are_found(op):
    model = _model([helper.make_node(op, ["x"], ["y"], name="r")])
    assert op in nondeterministic_op(model)
    with pytest.raises(InvalidInput, match=f"operator {op} .*two honest runs"):
        check_onnx_bytes(model.SerializeToString(), "model m@1")


def test_random_operators_in_if_subgraphs_and_local_functions_are_found():
    inner = helper.make_graph(
        [helper.make_node("RandomNormal", [], ["r"], shape=[1, 4], name="deep")], "then", [],
        [helper.make_tensor_value_info("r", TensorProto.FLOAT, [1, 4])],
    )  # fmt: skip
    plain = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["r"])], "else", [],
        [helper.make_tensor_value_info("r", TensorProto.FLOAT, [1, 4])],
    )  # fmt: skip
    cond = helper.make_tensor("c", TensorProto.BOOL, [], [True])
    model = _model([helper.make_node("If", ["c"], ["y"], then_branch=inner, else_branch=plain)], [cond])
    assert "RandomNormal" in nondeterministic_op(model) and "then_branch" in nondeterministic_op(model)
    function = helper.make_function("mallory", "Noise", ["a"], ["b"],
                                    [helper.make_node("RandomUniformLike", ["a"], ["b"])],
                                    [helper.make_opsetid("", 17)])  # fmt: skip
    model = _model([helper.make_node("Noise", ["x"], ["y"], domain="mallory")], functions=[function])
    assert "function mallory.Noise" in nondeterministic_op(model)


def test_dropout_only_in_inference_mode_and_unknown_domains_are_refused():
    off = helper.make_tensor("t", TensorProto.BOOL, [], [False])
    on = helper.make_tensor("t", TensorProto.BOOL, [], [True])
    ratio = helper.make_tensor("r", TensorProto.FLOAT, [], [0.5])
    dropout = helper.make_node("Dropout", ["x", "r", "t"], ["y"])
    assert nondeterministic_op(_model([dropout], [ratio, off])) is None
    assert "training mode" in nondeterministic_op(_model([dropout], [ratio, on]))
    assert nondeterministic_op(_model([helper.make_node("Dropout", ["x"], ["y"])])) is None
    custom = _model([helper.make_node("Mystery", ["x"], ["y"], domain="com.example")])
    assert "not known to be deterministic" in nondeterministic_op(custom)


def test_plain_models_pass():
    from veriml import examples

    assert nondeterministic_op(examples.mlp()) is None
    assert nondeterministic_op(examples.cnn()) is None


def _fingerprint(flags):
    return RuntimeFingerprint({"engine": "onnxruntime", "engine_version": "1.0", "provider": "CPUExecutionProvider",
                               "graph_optimization": "basic", "machine": "x86_64", "cpu_features": flags})  # fmt: skip


def test_a_kernel_selecting_cpu_flag_changes_the_runtime_class():
    avx512 = _fingerprint(["avx", "avx2", "fma", "avx512f"])
    assert avx512.runtime_class != _fingerprint(["avx", "avx2", "fma"]).runtime_class
    assert avx512.runtime_class == _fingerprint(["avx512f", "fma", "avx2", "avx"]).runtime_class  # order is not
    assert _fingerprint([]).runtime_class.endswith("/none")


def test_quorum_across_cpus_under_exact_is_not_comparable_not_a_disagreement(tmp_path):
    from dataclasses import replace

    from veriml import examples
    from veriml.client import Disagreement
    from veriml.client.protocol import judge_quorum
    from veriml.errors import VerificationFailed
    from veriml.identity import SigningKey
    from veriml.receipts import sign_receipt
    from veriml.receipts.commitment import commit
    from veriml.service import Home, Service

    path = examples.save(examples.mlp(), tmp_path / "mlp.onnx")
    with Service(Home(tmp_path / "home"), log=False) as service:
        service.publish(path, name="alice/mlp", publisher=SigningKey.generate("alice"))
        bundle = service.infer("alice/mlp", {"x": np.ones((1, 16), np.float32)})
    other = {name: np.nextafter(v, np.float32(np.inf)) for name, v in bundle.outputs.items()}
    body = bundle.receipt.body
    key = SigningKey.generate("other-cpu")
    receipt = sign_receipt(key, manifest=body.manifest, blob=body.blob, input_commitment=body.input_commitment,
                           output_commitment=commit(bundle.salt, tensors_digest(other)),
                           runtime=_fingerprint(["avx", "avx2"]))  # fmt: skip
    second = replace(bundle, receipt=receipt, outputs=other)
    with pytest.raises(VerificationFailed, match="not comparable") as refused:
        judge_quorum([("a", bundle), ("b", second)])
    assert not isinstance(refused.value, Disagreement)


def test_a_receipt_with_a_huge_runtime_fingerprint_is_refused_before_it_costs_anything(bundle):
    import time

    from veriml.errors import InvalidInput
    from veriml.receipts import parse_signed_receipt

    honest = bundle.receipt.to_json()
    assert parse_signed_receipt(honest).body.runtime == bundle.receipt.body.runtime  # a real one fits
    for junk in (
        {"pad": ["a" * 100] * 100_000},
        {"pad": 10**4000},
        {"pad": {"nested": 1}},
        {f"k{i}": 1 for i in range(65)},
    ):
        forged = {**honest, "body": {**honest["body"], "runtime": {"engine": "onnxruntime", **junk}}}
        start = time.perf_counter()
        with pytest.raises(InvalidInput, match="runtime fingerprint"):
            parse_signed_receipt(forged)
        assert time.perf_counter() - start < 0.5
