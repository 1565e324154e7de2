"""A node that answers auditors with more bytes than they will hold: it perturbs the outputs of every request
whose first input value is positive, and pads each answer to a request for several entries with 256 KiB of
white space (valid JSON, the same entries); with --all it pads the answers for single entries too, so that no
answer an auditor asks for fits under its cap. For the audit attack tests only (their auditors run with a
64 KiB cap: small_answer_cap_node.py).
Usage: audit_padding_node.py [--all] --config node.toml
"""

import sys

import positive_liar

from veriml.node import server
from veriml.node.__main__ import main

honest_create_app = server.create_app
PADDING = b" " * (256 << 10)
EVERY = "--all" in sys.argv
if EVERY:
    sys.argv.remove("--all")


def padding(app):  # type: ignore[no-untyped-def]
    async def wrapped(scope, receive, send):  # type: ignore[no-untyped-def]
        query = scope.get("query_string", b"") if scope["type"] == "http" else b""
        if scope.get("path") != "/v1/log/entries" or not (EVERY or b"%2C" in query or b"," in query):
            await app(scope, receive, send)
            return

        async def padded(message):  # type: ignore[no-untyped-def]
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message["headers"] if k.lower() != b"content-length"]
                message = {**message, "headers": headers}
            elif not message.get("more_body", False):
                message = {**message, "body": message.get("body", b"") + PADDING}
            await send(message)

        await app(scope, receive, padded)

    return wrapped


positive_liar.install()
server.create_app = lambda node: padding(honest_create_app(node))  # type: ignore[assignment]

if __name__ == "__main__":
    raise SystemExit(main())
