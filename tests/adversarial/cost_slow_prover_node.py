"""A node whose prover takes a minute per proof (as EZKL does for larger circuits) and whose models all count as
set up for proving: so that a test can fill its proof queue in seconds, without a circuit. Test-only: the prover
is replaced here, in the test suite, before the node starts; the queue, its bound and the routes are the product's.
Usage: cost_slow_prover_node.py --config node.toml
"""

import time

from veriml.node.__main__ import main
from veriml.node.node import Node
from veriml.service.service import Service


def slow_prove(self, bundle, executor=None):  # type: ignore[no-untyped-def]
    time.sleep(60)
    raise RuntimeError("the stand-in prover proves nothing")


def stand_in_circuit(self, manifest, inputs):  # type: ignore[no-untyped-def]
    arrays, outputs = self.run(manifest, inputs)  # no circuit here: onnxruntime stands in for it
    return arrays, outputs, self.engine_for(manifest).fingerprint


Node.ensure_zk = lambda self, manifest: None  # type: ignore[method-assign]
Service.prove = slow_prove  # type: ignore[method-assign]
Service.run_circuit = stand_in_circuit  # type: ignore[method-assign]

if __name__ == "__main__":
    raise SystemExit(main())
