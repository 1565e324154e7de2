"""A node that deletes every auditable request's data at once (a retention window of zero), so that auditors find
nothing to re-execute. For the audit attack tests only: the wrapper sets the window, the product has no switch.
Usage: audit_forgetful_node.py --config node.toml
"""

import dataclasses

from veriml.node import __main__ as node_main
from veriml.node.config import NodeConfig

honest_load = NodeConfig.load.__func__  # type: ignore[attr-defined]


def forgetful_load(cls, *args, **kwargs):  # type: ignore[no-untyped-def]
    return dataclasses.replace(honest_load(cls, *args, **kwargs), audit_retention=0.0)


node_main.NodeConfig.load = classmethod(forgetful_load)  # type: ignore[method-assign, assignment]

if __name__ == "__main__":
    raise SystemExit(node_main.main())
