"""An honest node whose auditor waits at most 2 s for one answer and 4 s for a round's answers from one peer (the
product's: 60 s and 180 s), so that an audit attack test can drip answers past them quickly. Not an attacker.
Usage: impatient_auditor_node.py --config node.toml
"""

from veriml.node import audit
from veriml.node.__main__ import main

audit.FETCH_DEADLINE = 2.0
audit.ROUND_TIME = 4.0

if __name__ == "__main__":
    raise SystemExit(main())
