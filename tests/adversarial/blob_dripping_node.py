"""A node that serves its model blobs a byte every 50 ms (20 bytes a second), each byte well inside any read
timeout: the drip that kept a peer fetching from it busy for as long as the blob lasted. Its other answers are
honest. Test-only: the drip wraps the app here.
Usage: blob_dripping_node.py --config node.toml
"""

import asyncio

from veriml.node import server
from veriml.node.__main__ import main

make_app = server.create_app


def dripping_app(node):  # type: ignore[no-untyped-def]
    app = make_app(node)

    async def dripping(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http" or not scope["path"].startswith("/v1/blobs/"):
            await app(scope, receive, send)
            return

        async def drip(message):  # type: ignore[no-untyped-def]
            if message["type"] != "http.response.body":
                await send(message)
                return
            body, more = message.get("body", b""), message.get("more_body", False)
            for n in range(len(body)):
                await send({"type": "http.response.body", "body": body[n : n + 1], "more_body": True})
                await asyncio.sleep(0.05)
            await send({"type": "http.response.body", "body": b"", "more_body": more})

        await app(scope, receive, drip)

    return dripping


server.create_app = dripping_app

if __name__ == "__main__":
    raise SystemExit(main())
