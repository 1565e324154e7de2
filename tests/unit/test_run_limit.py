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
    started = time.monotonic()
    with pytest.raises(RunTooLong, match=r"within 0\.5 s"):
        engine.run(BLOB, lambda: MODEL, inputs(10**12))  # days of iterations
    assert time.monotonic() - started < 1.0


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
