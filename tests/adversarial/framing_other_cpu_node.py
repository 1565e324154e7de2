"""An honest node on another CPU: it reports a CPU other than this machine's in its runtime fingerprint (without
AVX-512 where this one has it, with it where this one has not), and its kernels round differently there, so its
float outputs differ from the other nodes' by one unit in the last place.
For the framing tests only: the CPU is faked here by patching the engine before the node starts.
Usage: framing_other_cpu_node.py --config node.toml
"""

import numpy as np

from veriml.node.__main__ import main
from veriml.runtime import onnx_engine

HERE = onnx_engine.cpu_features()
if any(flag.startswith("avx512") for flag in HERE):
    OTHER_CPU = tuple(flag for flag in HERE if not flag.startswith("avx512"))
else:
    OTHER_CPU = tuple(sorted((*HERE, "avx512f")))
onnx_engine.cpu_features = lambda: OTHER_CPU  # type: ignore[assignment]
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
