"""A node that deletes every auditable request's data at once (a retention window of zero), so that auditors find
nothing to re-execute: its /v1/info states the window, and every entry it serves, one by one or several at once,
says its data is deleted (what its retention job does a moment later; said at once, so that no auditor gets in
first). For the audit attack tests only: the product has no switch for it.
Usage: audit_forgetful_node.py --config node.toml
"""

import dataclasses

from entry_rewriter import rewriting

from veriml.node import __main__ as node_main
from veriml.node import server
from veriml.node.config import NodeConfig

honest_load = NodeConfig.load.__func__  # type: ignore[attr-defined]
honest_create_app = server.create_app


def forgetful_load(cls, *args, **kwargs):  # type: ignore[no-untyped-def]
    return dataclasses.replace(honest_load(cls, *args, **kwargs), audit_retention=0.0)


def deleted(index, entry):  # type: ignore[no-untyped-def]
    kept = {key: value for key, value in entry.items() if key not in ("salt", "inputs", "outputs")}
    return {**kept, "data": "deleted"} if "inputs" in entry else entry


node_main.NodeConfig.load = classmethod(forgetful_load)  # type: ignore[method-assign, assignment]
server.create_app = lambda node: rewriting(honest_create_app(node), deleted)  # type: ignore[assignment]

if __name__ == "__main__":
    raise SystemExit(node_main.main())
