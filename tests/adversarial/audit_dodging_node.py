"""A node that cheats on some requests and tries to dodge the audit: it perturbs the outputs of every request whose
first input value is positive, and answers 500 for every odd log entry an auditor asks for, one by one or several
at once (hoping an auditor redraws its sample, or skips what it could not examine). For the audit attack tests
only.
Usage: audit_dodging_node.py --config node.toml
"""

import positive_liar
from entry_rewriter import rewriting

from veriml.node import server
from veriml.node.__main__ import main

honest_create_app = server.create_app


def dodge(index, entry):  # type: ignore[no-untyped-def]
    return {"index": index, "status": 500, "detail": "internal error"} if index % 2 == 1 else entry


positive_liar.install()
server.create_app = lambda node: rewriting(honest_create_app(node), dodge)  # type: ignore[assignment]

if __name__ == "__main__":
    raise SystemExit(main())
