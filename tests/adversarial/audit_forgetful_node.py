"""A node that deletes every auditable request's data at once (a retention window of zero), so that auditors find
nothing to re-execute: its /v1/info states the window, and every entry it serves, one by one or several at once,
says its data is deleted (what its retention job does a moment later; said at once, so that no auditor gets in
first). With --nan its /v1/info states its retention as "nan" (which Python's float() reads), hoping an auditor
judges every deletion by a window that compares false with everything. For the audit attack tests only: the
product has no switch for it.
Usage: audit_forgetful_node.py [--nan] --config node.toml
"""

import dataclasses
import json
import sys

from entry_rewriter import answer, captured, rewriting

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


def stating_nan(app):  # type: ignore[no-untyped-def]
    async def wrapped(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http" or scope.get("path") != "/v1/info":
            await app(scope, receive, send)
            return
        status, body = await captured(app, scope, receive)
        info = json.loads(body)
        info["audit"]["retention"] = "nan"
        await answer(send, status, json.dumps(info).encode())

    return wrapped


NAN = "--nan" in sys.argv
if NAN:
    sys.argv.remove("--nan")
node_main.NodeConfig.load = classmethod(forgetful_load)  # type: ignore[method-assign, assignment]
server.create_app = lambda node: rewriting(  # type: ignore[assignment]
    stating_nan(honest_create_app(node)) if NAN else honest_create_app(node), deleted
)

if __name__ == "__main__":
    raise SystemExit(node_main.main())
