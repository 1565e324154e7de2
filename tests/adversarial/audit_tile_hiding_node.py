"""A node that cheats on some requests and hides the read side of its log from auditors: it perturbs the outputs
of every request whose first input value is positive and answers every tile request (`/tile/...`) with 500,
hoping auditors, who prove each entry from its tiles, give up on it without recording anything. For the audit
attack tests only.
Usage: audit_tile_hiding_node.py --config node.toml
"""

import positive_liar

from veriml.node import server
from veriml.node.__main__ import main

honest_create_app = server.create_app


def hiding_tiles(app):  # type: ignore[no-untyped-def]
    async def wrapped(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] == "http" and scope.get("path", "").startswith("/tile/"):
            body = b'{"detail": "internal error"}'
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 500, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await app(scope, receive, send)

    return wrapped


positive_liar.install()
server.create_app = lambda node: hiding_tiles(honest_create_app(node))  # type: ignore[assignment]

if __name__ == "__main__":
    raise SystemExit(main())
