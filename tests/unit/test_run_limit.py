"""Every model run has a time limit: a run past it is stopped by onnxruntime's terminate flag, between two
operators or two iterations of a loop, and fails with RunTooLong; runs within it are untouched."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from tests.adversarial.costly_models import counting_loop
from veriml.codec import Digest
from veriml.errors import RunTooLong
from veriml.runtime import RuntimeSettings
from veriml.runtime.onnx_engine import OnnxEngine

MODEL = counting_loop().SerializeToString()
BLOB = Digest.of(MODEL)


def inputs(n: int) -> dict[str, np.ndarray]:
    return {"n": np.array(n, np.int64), "x": np.zeros(1, np.float32)}


def test_a_run_past_the_limit_is_stopped() -> None:
    engine = OnnxEngine(RuntimeSettings(max_run_seconds=0.5))
    engine.session(BLOB, lambda: MODEL)  # loaded first: only the run is timed
    started = time.monotonic()
    with pytest.raises(RunTooLong, match=r"within 0\.5 s"):
        engine.run(BLOB, lambda: MODEL, inputs(10**12))  # days of iterations
    assert time.monotonic() - started < 2.0


def test_a_run_within_the_limit_is_untouched_and_a_call_may_set_its_own() -> None:
    engine = OnnxEngine(RuntimeSettings(max_run_seconds=0.5))
    assert engine.run(BLOB, lambda: MODEL, inputs(1000))["y"].tolist() == [1000.0]
    with pytest.raises(RunTooLong, match=r"within 0\.1 s"):
        engine.run(BLOB, lambda: MODEL, inputs(10**12), time_limit=0.1)


def test_only_the_run_past_its_limit_is_stopped() -> None:
    """A long run and many short ones side by side: the watchdog stops the long one alone."""
    engine = OnnxEngine(RuntimeSettings(max_run_seconds=0.5))
    failures: list[BaseException] = []

    def long_run() -> None:
        try:
            engine.run(BLOB, lambda: MODEL, inputs(10**12))
        except RunTooLong as exc:
            failures.append(exc)

    runner = threading.Thread(target=long_run)
    runner.start()
    deadline = time.monotonic() + 1.0
    short = 0
    while time.monotonic() < deadline:
        assert engine.run(BLOB, lambda: MODEL, inputs(10))["y"].tolist() == [10.0]
        short += 1
    runner.join(5)
    assert len(failures) == 1 and short > 100


def test_the_limit_must_be_a_positive_number() -> None:
    from veriml.errors import InvalidInput

    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(InvalidInput, match="max_run_seconds"):
            RuntimeSettings(max_run_seconds=bad)


def test_work_that_follows_a_requests_values_is_found() -> None:
    """What keeps a model off a node's event loop: control flow, or a size computed from the inputs' values. A size
    from an input's shape (Shape, then Reshape) or from a constant is not."""
    import onnx
    from onnx import TensorProto, helper

    from tests.adversarial.costly_models import counting_loop
    from veriml import examples
    from veriml.hub.onnx_model import value_sized_op

    assert value_sized_op(examples.mlp()) is None
    assert value_sized_op(examples.cnn()) is None
    assert "Loop" in (value_sized_op(counting_loop()) or "")

    def graph_of(nodes, inputs, initializers=()):  # type: ignore[no-untyped-def]
        graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                                  initializer=list(initializers))  # fmt: skip
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    n = helper.make_tensor_value_info("n", TensorProto.INT64, [2])
    by_value = graph_of([helper.make_node("Add", ["n", "n"], ["m"]), helper.make_node("ConstantOfShape", ["m"], ["y"])],
                        [n])  # fmt: skip
    assert "ConstantOfShape" in (value_sized_op(by_value) or "")
    by_shape = graph_of([helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Reshape", ["x", "s"], ["y"])], [x])
    assert value_sized_op(by_shape) is None
    shape = onnx.numpy_helper.from_array(np.array([4, 1], np.int64), "shape")
    by_constant = graph_of([helper.make_node("Reshape", ["x", "shape"], ["y"])], [x], [shape])
    assert value_sized_op(by_constant) is None
    overridden = graph_of([helper.make_node("Reshape", ["x", "shape"], ["y"])],
                          [x, helper.make_tensor_value_info("shape", TensorProto.INT64, [2])], [shape])  # fmt: skip
    assert "Reshape" in (value_sized_op(overridden) or "")  # an initializer listed as an input: a caller sets it
