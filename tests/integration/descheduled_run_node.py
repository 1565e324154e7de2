"""An honest node on a machine busy enough that the kernel takes its event loop's thread off the CPU in the middle of
a model run, for 0.3 s: a run whose first input value is DURING_RUN is descheduled inside its time limit's window
(the watchdog stops it), one whose first value is BEFORE_RUN just before onnxruntime starts (it ends, late). Not an
attacker: the model and its answers are honest.
Usage: descheduled_run_node.py --config node.toml
"""

import contextlib
import threading
import time

import numpy as np

from veriml.node.__main__ import main
from veriml.runtime import onnx_engine

DURING_RUN, BEFORE_RUN = 7.0, 8.0
OFF_CPU = 0.3

_limited_run = onnx_engine.limited_run
_run = onnx_engine.OnnxEngine.run
_state = threading.local()


@contextlib.contextmanager
def descheduled_limited_run(seconds):  # type: ignore[no-untyped-def]
    with _limited_run(seconds) as options:
        if getattr(_state, "mark", None) == DURING_RUN:
            time.sleep(OFF_CPU)  # past the limit on the clock, no CPU used: the watchdog sets terminate meanwhile
        yield options


def run(self, blob_id, load, inputs, time_limit=None):  # type: ignore[no-untyped-def]
    _state.mark = float(np.asarray(next(iter(inputs.values()))).flat[0])
    try:
        if _state.mark == BEFORE_RUN:
            time.sleep(OFF_CPU)
        return _run(self, blob_id, load, inputs, time_limit)
    finally:
        _state.mark = None


onnx_engine.limited_run = descheduled_limited_run
onnx_engine.OnnxEngine.run = run

if __name__ == "__main__":
    raise SystemExit(main())
