"""An honest node whose auditor waits up to 30 s for one answer and 60 s for a round's answers from one peer (the
product's: 60 s and 180 s): long enough that an audit attack test can see what the auditor does while one
peer's round is held open. Not an attacker.
Usage: patient_auditor_node.py --config node.toml
"""

from veriml.node import audit
from veriml.node.__main__ import main

audit.FETCH_DEADLINE = 30.0
audit.ROUND_TIME = 60.0

if __name__ == "__main__":
    raise SystemExit(main())
