"""A node that will not let auditors examine some of its log entries: entry i with i % 3 == 0 answers 500, entry i
with i % 3 == 1 answers without its receipt (though a signed checkpoint covers it); the rest are served
honestly, whether asked for one by one or several at once. For the audit attack tests only: the product has no
switch for it.
Usage: audit_refusing_node.py --config node.toml
"""

from entry_rewriter import rewriting

from veriml.node import server
from veriml.node.__main__ import main

honest_create_app = server.create_app


def refuse(index, entry):  # type: ignore[no-untyped-def]
    if index % 3 == 0:
        return {"index": index, "status": 500, "detail": "internal error"}
    if index % 3 == 1:
        return {key: value for key, value in entry.items() if key != "receipt"}
    return entry


server.create_app = lambda node: rewriting(honest_create_app(node), refuse)  # type: ignore[assignment]

if __name__ == "__main__":
    raise SystemExit(main())
