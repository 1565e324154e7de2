"""Models whose work depends on their inputs' values, not their shapes: what a publisher could plant so that one
small request keeps a node (or a verifier re-executing it) busy for days. Test-only."""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper


def counting_loop() -> onnx.ModelProto:
    """y = x + n, one addition per iteration of a Loop that runs n times (n an int64 scalar input): about a
    microsecond an iteration, so n = 10**12 would run for days."""
    one = helper.make_node("Constant", [], ["one"], value=helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]))
    add = helper.make_node("Add", ["x_in", "one"], ["x_out"])
    keep = helper.make_node("Identity", ["cond_in"], ["cond_out"])
    body = helper.make_graph(
        [one, add, keep], "count",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("x_in", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("x_out", TensorProto.FLOAT, [1])],
    )  # fmt: skip
    true = helper.make_node("Constant", [], ["true"], value=helper.make_tensor("true", TensorProto.BOOL, [], [True]))
    loop = helper.make_node("Loop", ["n", "true", "x"], ["y"], body=body)
    graph = helper.make_graph(
        [true, loop], "counting_loop",
        [helper.make_tensor_value_info("n", TensorProto.INT64, []),
         helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model
