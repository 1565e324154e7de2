"""A node that cheats on some requests and then makes their data look long expired: it perturbs the outputs of
every request whose first input value is positive, dates every receipt it signs two days back, and says each
request's data is deleted (its retention window is zero), whether asked for one entry or several, hoping
auditors find entries whose retention ended before they asked and record them as deleted, not as refused. For
the audit attack tests only.
Usage: audit_backdating_node.py --config node.toml
"""

import dataclasses
import time

import positive_liar
from entry_rewriter import rewriting

from veriml.node import __main__ as node_main
from veriml.node import server
from veriml.node.config import NodeConfig
from veriml.receipts import receipt

BACK = 2 * 86400
honest_load = NodeConfig.load.__func__  # type: ignore[attr-defined]
honest_create_app = server.create_app


def backdated_timestamp() -> str:
    seconds, nanoseconds = divmod(time.time_ns() - BACK * 1_000_000_000, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanoseconds // 1000:06d}Z"


def forgetful_load(cls, *args, **kwargs):  # type: ignore[no-untyped-def]
    return dataclasses.replace(honest_load(cls, *args, **kwargs), audit_retention=0.0)


def deleted(index, entry):  # type: ignore[no-untyped-def]
    kept = {key: value for key, value in entry.items() if key not in ("salt", "inputs", "outputs")}
    return {**kept, "data": "deleted"} if "inputs" in entry else entry


positive_liar.install()
server.create_app = lambda node: rewriting(honest_create_app(node), deleted)  # type: ignore[assignment]
receipt.utc_timestamp = backdated_timestamp
node_main.NodeConfig.load = classmethod(forgetful_load)  # type: ignore[method-assign, assignment]

if __name__ == "__main__":
    raise SystemExit(node_main.main())
