"""A node that cheats on some requests, keeps auditors from proving them while their data must be kept, then deletes
the data and waits the window out, hoping the refusals recorded meanwhile close as "deleted after the window". It
perturbs the outputs of every request whose first input value is positive, states a retention window of zero,
answers every tile request with 500 until the file given with --until exists, and from then on serves its tiles
and says every entry's data is deleted. For the audit attack tests only (its auditors run with a 10 s minimum
window: short_window_auditor_node.py).
Usage: audit_outwaiting_node.py --until FILE --config node.toml
"""

import dataclasses
import sys
from pathlib import Path

import positive_liar
from entry_rewriter import answer, rewriting

from veriml.node import __main__ as node_main
from veriml.node import server
from veriml.node.config import NodeConfig

at = sys.argv.index("--until")
UNTIL = Path(sys.argv[at + 1])
del sys.argv[at : at + 2]
honest_load = NodeConfig.load.__func__  # type: ignore[attr-defined]
honest_create_app = server.create_app


def zero_retention(cls, *args, **kwargs):  # type: ignore[no-untyped-def]
    return dataclasses.replace(honest_load(cls, *args, **kwargs), audit_retention=0.0)


def deleted_later(index, entry):  # type: ignore[no-untyped-def]
    if not UNTIL.exists() or "inputs" not in entry:
        return entry
    kept = {key: value for key, value in entry.items() if key not in ("salt", "inputs", "outputs")}
    return {**kept, "data": "deleted"}


def tiles_hidden_until(app):  # type: ignore[no-untyped-def]
    async def wrapped(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] == "http" and scope.get("path", "").startswith("/tile/") and not UNTIL.exists():
            await answer(send, 500, b'{"detail": "internal error"}')
            return
        await app(scope, receive, send)

    return wrapped


positive_liar.install()
node_main.NodeConfig.load = classmethod(zero_retention)  # type: ignore[method-assign, assignment]
server.create_app = lambda node: tiles_hidden_until(rewriting(honest_create_app(node), deleted_later))  # type: ignore[assignment]

if __name__ == "__main__":
    raise SystemExit(node_main.main())
