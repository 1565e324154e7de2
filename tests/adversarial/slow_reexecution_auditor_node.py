"""An honest node whose auditor takes 2 s to re-execute any request whose first input value is positive (standing
in for the heaviest re-executions a peer's requests may ask within the limits), and waits at most 2 s for one
answer and 4 s for a round (the product's: 60 s and 180 s). Not an attacker: a test of what one peer's costly
entries do to the audit of another.
Usage: slow_reexecution_auditor_node.py --config node.toml
"""

import time

import positive_liar

from veriml.node import audit
from veriml.node.__main__ import main
from veriml.service import Service

audit.FETCH_DEADLINE = 2.0
audit.ROUND_TIME = 4.0
honest_attest = Service.attest


def slow_attest(self, manifest, receipt, salt, inputs, outputs):  # type: ignore[no-untyped-def]
    if positive_liar.lies_on(inputs):
        time.sleep(2.0)
    return honest_attest(self, manifest, receipt, salt, inputs, outputs)


Service.attest = slow_attest  # type: ignore[method-assign]

if __name__ == "__main__":
    raise SystemExit(main())
