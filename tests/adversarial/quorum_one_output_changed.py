"""A quorum member whose answers are honest but for one output value, moved by one unit in the last place: the
receipt (and its commitment) is the honest one, the outputs beside it are not. The client checks what each
member sent on its own bytes; this member's outputs do not open its receipt's commitment and it is refused.
Test-only; usage: quorum_one_output_changed.py --config node.toml"""

from dataclasses import replace

import numpy as np

from veriml.node.__main__ import main
from veriml.service.service import Service

honest_infer_submit = Service.infer_submit


def one_output_changed(self, ref, inputs, request_id=None, **options):  # type: ignore[no-untyped-def]
    bundle, logged = honest_infer_submit(self, ref, inputs, request_id, **options)
    outputs = {name: array.copy() for name, array in bundle.outputs.items()}
    name = sorted(outputs)[0]
    flat = outputs[name].reshape(-1)
    flat[0] = np.nextafter(flat[0], np.asarray(np.inf, flat.dtype))
    # The node's own encoding of the honest outputs is dropped, so that the changed ones are what it writes.
    return replace(bundle, outputs=outputs, encoded_outputs=None), logged


Service.infer_submit = one_output_changed  # type: ignore[method-assign]

if __name__ == "__main__":
    raise SystemExit(main())
