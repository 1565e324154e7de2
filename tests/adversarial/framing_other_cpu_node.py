"""An honest node on another CPU: it reports an AVX2-only CPU (no AVX-512) in its runtime fingerprint, and its
kernels round differently there, so its float outputs differ from the other nodes' by one unit in the last place.
For the framing tests only: the CPU is faked here by patching the engine before the node starts.
Usage: framing_other_cpu_node.py --config node.toml
"""

import numpy as np

from veriml.node.__main__ import main
from veriml.runtime import onnx_engine

AVX2_CPU = ("sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c")
onnx_engine.cpu_features = lambda: AVX2_CPU  # type: ignore[assignment]
kernel_run = onnx_engine.OnnxEngine.run


def other_rounding(self, blob_id, load, inputs, time_limit=None):  # type: ignore[no-untyped-def]
    outputs = kernel_run(self, blob_id, load, inputs, time_limit)
    return {
        name: np.nextafter(value, np.asarray(np.inf, value.dtype)) if value.dtype.kind == "f" else value
        for name, value in outputs.items()
    }


onnx_engine.OnnxEngine.run = other_rounding  # type: ignore[method-assign]

if __name__ == "__main__":
    raise SystemExit(main())
