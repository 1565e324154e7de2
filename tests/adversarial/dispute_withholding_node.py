"""A node that answers wrongly and then hides from its committee: every output it serves is shifted by 1e-3
(consistently), and it discloses an auditable entry's data to each auditor once, withholding it when the same
auditor asks again — as a member of the committee drawn to re-execute the dispute its audit led to. For the
dispute tests only: the faults are injected here by patching before the node starts; the product has no switch.
Usage: dispute_withholding_node.py --config F"""

import numpy as np
from served_runs import serving

from veriml.node import disclosure
from veriml.node.__main__ import main
from veriml.node.auditor_auth import AUDITOR_HEADER
from veriml.runtime.onnx_engine import OnnxEngine

honest_run = OnnxEngine.run
honest_answer = disclosure.Disclosure._answer
disclosed: set[tuple[str, int]] = set()  # (auditor key, log index)


def wrong_run(self, blob_id, load, inputs, time_limit=None):  # type: ignore[no-untyped-def]
    outputs = honest_run(self, blob_id, load, inputs, time_limit)
    if not serving():
        return outputs
    return {name: (value + np.asarray(1e-3, value.dtype)).astype(value.dtype) for name, value in outputs.items()}


def answer_once(self, index, auditor, headers, stored=None):  # type: ignore[no-untyped-def]
    answer = honest_answer(self, index, auditor, headers, stored)
    if answer["data"] == "disclosed":
        asked = (headers.get(AUDITOR_HEADER, ""), index)
        if asked in disclosed:
            return {"index": index, "receipt": answer["receipt"], "proof": answer["proof"], "data": "withheld"}
        disclosed.add(asked)
    return answer


OnnxEngine.run = wrong_run  # type: ignore[method-assign]
disclosure.Disclosure._answer = answer_once  # type: ignore[method-assign]

if __name__ == "__main__":
    raise SystemExit(main())
