"""A node that shifts every proven output by 0.01 and signs the shifted outputs, while proving honestly: the
proof is valid and its public outputs are the circuit's, but the outputs it signs and serves are not. Within
the old absolute bound of 0.05 between proven and claimed outputs this passed as `proven`. For the ZK attack
tests only; the product has no switch for it. Usage: zk_shifting_node.py --config node.toml
"""

from dataclasses import replace

import numpy as np

from veriml.node.__main__ import main
from veriml.service import Service

SHIFT = 0.01
honest_run_circuit = Service.run_circuit
honest_prove = Service.prove


def shifted_run_circuit(self, manifest, inputs):  # type: ignore[no-untyped-def]
    arrays, outputs, runtime = honest_run_circuit(self, manifest, inputs)
    shifted = {name: (value + np.asarray(SHIFT, value.dtype)).astype(value.dtype) for name, value in outputs.items()}
    return arrays, shifted, runtime


def prove_the_honest_outputs(self, bundle, executor=None):  # type: ignore[no-untyped-def]
    # The node's own pre-check would refuse its shifted outputs; it proves the circuit's instead.
    _, honest, _ = honest_run_circuit(self, bundle.manifest, bundle.inputs)
    return replace(honest_prove(self, replace(bundle, outputs=honest), executor), outputs=bundle.outputs)


Service.run_circuit = shifted_run_circuit  # type: ignore[method-assign]
Service.prove = prove_the_honest_outputs  # type: ignore[method-assign]

if __name__ == "__main__":
    raise SystemExit(main())
