"""An honest node whose auditor holds at most 64 KiB of any one answer (the product's cap is 256 MiB), so that the
audit attack tests can send answers over the cap without sending hundreds of megabytes. Not an attacker.
Usage: small_answer_cap_node.py --config node.toml
"""

from veriml.node import audit
from veriml.node.__main__ import main

audit.MAX_ANSWER_BYTES = 64 << 10

if __name__ == "__main__":
    raise SystemExit(main())
