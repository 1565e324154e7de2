"""A node whose engine perturbs every output: a Byzantine node, for the fault tests only.

The fault is injected here, in the test suite, by wrapping the engine before the node starts; the product has
no switch for it. Usage: veriml_byzantine_node.py --config node.toml
"""

import numpy as np

from veriml.node.__main__ import main
from veriml.runtime.onnx_engine import OnnxEngine

honest_run = OnnxEngine.run


def lying_run(self, blob_id, load, inputs, time_limit=None):  # type: ignore[no-untyped-def]
    outputs = honest_run(self, blob_id, load, inputs, time_limit)
    return {name: (value + np.asarray(1e-3, value.dtype)).astype(value.dtype) for name, value in outputs.items()}


OnnxEngine.run = lying_run  # type: ignore[method-assign]

if __name__ == "__main__":
    raise SystemExit(main())
