"""Models whose work depends on their inputs' values, not their shapes: what a publisher could plant so that one
small request keeps a node (or a verifier re-executing it) busy for days. Test-only."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


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


def deep_mlp(layers: int = 40, width: int = 128, seed: int = 0) -> onnx.ModelProto:
    """x[batch,16] through `layers` MatMul + Relu layers of `width`: about 2.7 MB of weights (small enough to run on
    a node's event loop), and work that follows the batch size, one short operator after another."""
    rng = np.random.default_rng(seed)
    nodes, initializers, previous, size = [], [], "x", 16
    for n in range(layers):
        weight = (rng.standard_normal((size, width)) / np.sqrt(size)).astype(np.float32)
        initializers.append(numpy_helper.from_array(weight, f"w{n}"))
        nodes += [helper.make_node("MatMul", [previous, f"w{n}"], [f"m{n}"]),
                  helper.make_node("Relu", [f"m{n}"], [f"h{n}" if n < layers - 1 else "y"])]  # fmt: skip
        previous, size = f"h{n}", width
    graph = helper.make_graph(
        nodes, "deep_mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", width])], initializer=initializers,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model
