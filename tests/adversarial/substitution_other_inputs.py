"""A node that runs the asked model on other inputs (every value plus one) and signs that honestly: a valid
bundle for inputs the client did not send. Test-only; usage: substitution_other_inputs.py --config node.toml"""

import numpy as np

from veriml.codec import tensor_from_json
from veriml.node.__main__ import main
from veriml.service.service import Service

honest_infer_submit = Service.infer_submit


def substituting(self, ref, inputs, request_id=None, **options):  # type: ignore[no-untyped-def]
    arrays = {name: value if isinstance(value, np.ndarray) else tensor_from_json(value, name)
              for name, value in inputs.items()}  # fmt: skip
    other = {name: (array + np.asarray(1, array.dtype)).astype(array.dtype) for name, array in arrays.items()}
    return honest_infer_submit(self, ref, other, request_id, **options)


Service.infer_submit = substituting  # type: ignore[method-assign]

if __name__ == "__main__":
    raise SystemExit(main())
