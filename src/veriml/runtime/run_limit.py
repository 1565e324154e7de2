"""A time limit on every model run. A model's work may depend on its inputs' values, not only their shapes (a
`Loop` whose trip count is an input, `Range` or `ConstantOfShape` sized by one), so one request could otherwise
run for days: a node's worker, its event loop when the model runs there, or a verifier re-executing a bundle.

onnxruntime stops a run between two operators, and between two iterations of a loop, once the run's
`RunOptions.terminate` is set. One watchdog thread sets it on runs past their limit, looking every TICK seconds: a
timer per run would cost more than a small model's run."""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Iterator

import onnxruntime as ort

TICK = 0.05  # seconds between the watchdog's looks: how far past its limit a run may go
_active: dict[int, tuple[float, ort.RunOptions]] = {}  # run -> (deadline, its options)
_numbers = itertools.count()
_started = threading.Event()
_lock = threading.Lock()


@contextlib.contextmanager
def limited_run(seconds: float) -> Iterator[ort.RunOptions]:
    """RunOptions for one run that the watchdog terminates `seconds` after this."""
    options = ort.RunOptions()
    number = next(_numbers)
    _active[number] = (time.monotonic() + seconds, options)
    if not _started.is_set():
        _start_watchdog()
    try:
        yield options
    finally:
        del _active[number]


def _start_watchdog() -> None:
    with _lock:
        if not _started.is_set():
            threading.Thread(target=_watch, name="run-watchdog", daemon=True).start()
            _started.set()


def _watch() -> None:
    while True:
        time.sleep(TICK)
        now = time.monotonic()
        try:
            for deadline, options in list(_active.values()):  # a copy: runs come and go meanwhile
                if now > deadline:
                    options.terminate = True
        except Exception:  # the watchdog must outlive anything one look meets, or no limit would hold again
            logging.getLogger("veriml.runtime").exception("run watchdog: a look failed")
