import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from veriml.errors import InvalidInput
from veriml.zk.preflight import check_memory, check_operators, estimated_memory


def test_unsupported_operators_are_named(tmp_path):
    node = helper.make_node("TopK", ["x", "k"], ["values", "indices"])
    graph = helper.make_graph(
        [node], "topk",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("values", TensorProto.FLOAT, [2]),
         helper.make_tensor_value_info("indices", TensorProto.INT64, [2])],
        [onnx.numpy_helper.from_array(np.array([2], np.int64), "k")],
    )  # fmt: skip
    path = tmp_path / "topk.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(InvalidInput, match="uses TopK, which EZKL cannot prove"):
        check_operators(path)


def test_supported_models_pass(tmp_path):
    from veriml import examples

    check_operators(examples.save(examples.cnn(), tmp_path / "cnn.onnx"))


def test_memory_estimate_against_the_cap():
    assert estimated_memory(15) < 1 << 30
    check_memory(15, 1 << 30)
    with pytest.raises(InvalidInput, match=r"logrows 20 needs about 22.0 GiB, over the cap of 8.0 GiB"):
        check_memory(20, 8 << 30)
