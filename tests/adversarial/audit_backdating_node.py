"""A node that cheats on some requests and then makes their data look long expired: it perturbs the outputs of
every request whose first input value is positive, dates every receipt it signs two days back, and says each
request's data is deleted (its retention window is zero: audit_forgetful_node.py), whether asked for one entry or
several, hoping auditors find entries whose retention ended before they asked and record them as deleted, not as
refused. For the audit attack tests only.
Usage: audit_backdating_node.py --config node.toml
"""

import time

import audit_forgetful_node  # noqa: F401  (a zero retention window, and every entry's data said deleted)
import positive_liar

from veriml.node import __main__ as node_main
from veriml.receipts import receipt

BACK = 2 * 86400


def backdated_timestamp() -> str:
    seconds, nanoseconds = divmod(time.time_ns() - BACK * 1_000_000_000, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanoseconds // 1000:06d}Z"


positive_liar.install()
receipt.utc_timestamp = backdated_timestamp

if __name__ == "__main__":
    raise SystemExit(node_main.main())
