"""A node that equivocates: every second run of a model perturbs the output, so the same input gets two
different answers, both signed and logged. For the chain tests only: the fault is injected here, by wrapping the
engine before the node starts; the product has no switch for it. Usage: veriml_equivocating_node.py --config F"""

import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parents[1] / "adversarial"))  # served_runs, shared with the attack nodes
from served_runs import serving

from veriml.node.__main__ import main
from veriml.runtime.onnx_engine import OnnxEngine

honest_run = OnnxEngine.run
runs = itertools.count()


def equivocating_run(self, blob_id, load, inputs, time_limit=None):  # type: ignore[no-untyped-def]
    outputs = honest_run(self, blob_id, load, inputs, time_limit)
    if not serving():
        return outputs  # re-executing peers' receipts must not shift which served request gets perturbed
    if next(runs) % 2 == 0:
        return outputs
    return {name: (value + np.asarray(1e-3, value.dtype)).astype(value.dtype) for name, value in outputs.items()}


OnnxEngine.run = equivocating_run  # type: ignore[method-assign]

if __name__ == "__main__":
    raise SystemExit(main())
