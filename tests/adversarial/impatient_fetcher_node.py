"""An honest node that waits 1.5 s, then wants 1 KiB a second on average, from a peer sending it a blob (the
product's: 60 s, then 256 KiB a second), so a test sees it give up in seconds.
Usage: impatient_fetcher_node.py --config node.toml
"""

from veriml import bounded_get
from veriml.node.__main__ import main

bounded_get.STREAM_GRACE = 1.5
bounded_get.STREAM_MIN_RATE = 1024

if __name__ == "__main__":
    raise SystemExit(main())
