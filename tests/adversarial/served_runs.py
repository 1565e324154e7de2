"""For attack nodes that lie only in what they serve: importing this module marks the requests a node serves
(`Service.infer_submit`, inline or in a worker thread), and `serving()` is true while this thread runs one. Runs
for anything else (re-executing a peer's receipt in an audit, attesting, a dispute committee's replay) are
honest. Thread names do not tell them apart: audit rounds run in threads of their own names."""

import threading

from veriml.service.service import Service

_serving = threading.local()
_honest_submit = Service.infer_submit


def _marked_submit(self, *args, **kwargs):  # type: ignore[no-untyped-def]
    _serving.on = True
    try:
        return _honest_submit(self, *args, **kwargs)
    finally:
        _serving.on = False


def serving() -> bool:
    return getattr(_serving, "on", False)


Service.infer_submit = _marked_submit  # type: ignore[method-assign]
