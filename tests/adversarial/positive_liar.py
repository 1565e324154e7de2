"""For the audit attack nodes: a node's onnxruntime that lies on every request whose first input value is
positive (each output shifted by 1e-3), and tells the truth on the rest."""

from typing import Any

import numpy as np

from veriml.runtime.onnx_engine import OnnxEngine

honest_run = OnnxEngine.run


def lies_on(inputs: Any) -> bool:
    return float(np.asarray(next(iter(inputs.values()))).flat[0]) > 0


def cheating_run(self, blob_id, load, inputs, time_limit=None):  # type: ignore[no-untyped-def]
    outputs = honest_run(self, blob_id, load, inputs, time_limit)
    if not lies_on(inputs):
        return outputs
    return {name: (value + np.asarray(1e-3, value.dtype)).astype(value.dtype) for name, value in outputs.items()}


def install() -> None:
    OnnxEngine.run = cheating_run  # type: ignore[method-assign]
