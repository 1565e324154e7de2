"""A node that answers wrongly but consistently: every output it serves is shifted by 1e-3, the same way for the
same input, signed and logged (so it never contradicts itself: no equivocation slash applies). It re-executes
peers' receipts honestly. For the dispute tests only: the fault is injected here, by wrapping the engine before
the node starts; the product has no switch for it. Usage: veriml_wrong_node.py --config F"""

import threading

import numpy as np

from veriml.node.__main__ import main
from veriml.runtime.onnx_engine import OnnxEngine

honest_run = OnnxEngine.run


def wrong_run(self, blob_id, load, inputs):  # type: ignore[no-untyped-def]
    outputs = honest_run(self, blob_id, load, inputs)
    if threading.current_thread().name in ("audit", "disputes"):
        return outputs
    return {name: (value + np.asarray(1e-3, value.dtype)).astype(value.dtype) for name, value in outputs.items()}


OnnxEngine.run = wrong_run  # type: ignore[method-assign]

if __name__ == "__main__":
    raise SystemExit(main())
