"""A node that cheats on some requests and hides the read side of its log from auditors, hoping they give up on
it without recording anything. It perturbs the outputs of every request whose first input value is positive,
and with --tiles answers every tile request (`/tile/...`) with 500; with --corrupt-tiles serves each tile with one
bit flipped (the right length, the wrong hashes); with --checkpoint answers 503 at /checkpoint to whoever asks
as auditors do (`Accept-Encoding: identity`), while its witnesses still get every checkpoint. For the audit attack
tests only.
Usage: audit_hiding_node.py --tiles|--corrupt-tiles|--checkpoint --config node.toml
"""

import asyncio
import sys

import positive_liar
from entry_rewriter import answer, captured

from veriml.node import server
from veriml.node.__main__ import main

honest_create_app = server.create_app
MODE = next(arg for arg in sys.argv if arg in ("--tiles", "--corrupt-tiles", "--checkpoint", "--drip"))
sys.argv.remove(MODE)


def hiding(app):  # type: ignore[no-untyped-def]
    async def wrapped(scope, receive, send):  # type: ignore[no-untyped-def]
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if MODE == "--tiles" and path.startswith("/tile/"):
            await answer(send, 500, b'{"detail": "internal error"}')
        elif MODE == "--corrupt-tiles" and path.startswith("/tile/") and not path.startswith("/tile/entries/"):
            status, served = await captured(app, scope, receive)
            body = bytearray(served)
            if status == 200 and body:
                body[len(body) // 2] ^= 1
            await answer(send, status, bytes(body), b"application/octet-stream")
        elif MODE == "--drip" and path == "/v1/log/entries":
            headers = [(b"content-type", b"application/json"), (b"content-length", b"100000")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            for _ in range(100_000):
                await send({"type": "http.response.body", "body": b" ", "more_body": True})
                await asyncio.sleep(0.3)
        elif MODE == "--checkpoint" and path == "/checkpoint" and (b"accept-encoding", b"identity") in scope["headers"]:
            await answer(send, 503, b'{"detail": "unavailable"}')
        else:
            await app(scope, receive, send)

    return wrapped


positive_liar.install()
server.create_app = lambda node: hiding(honest_create_app(node))  # type: ignore[assignment]

if __name__ == "__main__":
    raise SystemExit(main())
