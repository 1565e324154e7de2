"""A node that cheats on some requests and answers auditors with something they cannot finish examining, hoping
each stops there every round and records nothing. It perturbs the outputs of every request whose first input
value is positive; with --signature it serves each auditable entry i with i % 2 == 0 as its real receipt body
(the leaf and the proof still check) under a made-up signature; with --deep it answers every request for several
entries with JSON nested past any parser's depth. For the audit attack tests only.
Usage: audit_poisoning_node.py --signature|--deep --config node.toml
"""

import sys

import positive_liar
from entry_rewriter import answer, rewriting

from veriml.codec import b64encode
from veriml.node import server
from veriml.node.__main__ import main

honest_create_app = server.create_app
DEEP = b"[" * 100_000 + b"]" * 100_000


def poison(index, entry):  # type: ignore[no-untyped-def]
    if index % 2 == 0 and "inputs" in entry:
        return {**entry, "receipt": {**entry["receipt"], "signature": b64encode(bytes(64))}}
    return entry


def too_deep(app):  # type: ignore[no-untyped-def]
    async def wrapped(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] == "http" and scope.get("path") == "/v1/log/entries":
            await answer(send, 200, DEEP)
            return
        await app(scope, receive, send)

    return wrapped


positive_liar.install()
if "--deep" in sys.argv:
    sys.argv.remove("--deep")
    server.create_app = lambda node: too_deep(honest_create_app(node))  # type: ignore[assignment]
else:
    sys.argv.remove("--signature")
    server.create_app = lambda node: rewriting(honest_create_app(node), poison)  # type: ignore[assignment]

if __name__ == "__main__":
    raise SystemExit(main())
