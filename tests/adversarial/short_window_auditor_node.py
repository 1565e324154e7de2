"""An honest node whose auditor holds peers to a minimum retention window of 10 s and lets a refusal that lasted
1 s stand (the product: one day, and 10 minutes), so that an audit attack test can wait a window out. Not an
attacker.
Usage: short_window_auditor_node.py --config node.toml
"""

from veriml.node import audit
from veriml.node.__main__ import main

audit.MIN_RETENTION = 10.0
audit.REFUSAL_SPAN = 1.0

if __name__ == "__main__":
    raise SystemExit(main())
