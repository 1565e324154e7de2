"""A node that will not let auditors examine some of its log entries: entry i with i % 3 == 0 answers 500, entry i
with i % 3 == 1 answers without its tlog-proof (though a signed checkpoint covers it); the rest are served
honestly. For the audit attack tests only: the product has no switch for it.
Usage: audit_refusing_node.py --config node.toml
"""

import json
import re

from veriml.node import server
from veriml.node.__main__ import main

ENTRY = re.compile(r"/v1/log/entries/(\d+)")
honest_create_app = server.create_app


def refusing(app):  # type: ignore[no-untyped-def]
    async def wrapped(scope, receive, send):  # type: ignore[no-untyped-def]
        match = ENTRY.fullmatch(scope.get("path", "")) if scope["type"] == "http" else None
        if match is None or int(match[1]) % 3 == 2:
            await app(scope, receive, send)
            return
        if int(match[1]) % 3 == 0:
            await send({"type": "http.response.start", "status": 500,
                        "headers": [(b"content-type", b"application/json")]})  # fmt: skip
            await send({"type": "http.response.body", "body": b'{"detail": "internal error"}'})
            return
        start, chunks = {}, []

        async def capture(message):  # type: ignore[no-untyped-def]
            if message["type"] == "http.response.start":
                start.update(message)
            else:
                chunks.append(message.get("body", b""))

        await app(scope, receive, capture)
        body = json.loads(b"".join(chunks))
        body["proof"] = None
        data = json.dumps(body).encode()
        headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
        await send({**start, "headers": [*headers, (b"content-length", str(len(data)).encode())]})
        await send({"type": "http.response.body", "body": data})

    return wrapped


server.create_app = lambda node: refusing(honest_create_app(node))  # type: ignore[assignment]

if __name__ == "__main__":
    raise SystemExit(main())
