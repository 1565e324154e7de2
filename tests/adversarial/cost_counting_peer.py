"""An honest node that counts the requests its peers make of it, by path, and answers the counts at
GET /test/hits: to measure what other nodes' callers make them ask. Test-only: the counter wraps the app here.
Usage: cost_counting_peer.py --config node.toml
"""

from collections import Counter

from veriml.node import server
from veriml.node.__main__ import main

hits: Counter[str] = Counter()
make_app = server.create_app


def counting_app(node):  # type: ignore[no-untyped-def]
    app = make_app(node)

    @app.get("/test/hits", include_in_schema=False)
    def counts() -> dict[str, int]:
        return dict(hits)

    async def counting(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] == "http" and scope["path"] != "/test/hits":
            path = scope["path"]
            hits["/v1/models/*/versions" if path.endswith("/versions") else path] += 1
        await app(scope, receive, send)

    return counting


server.create_app = counting_app

if __name__ == "__main__":
    raise SystemExit(main())
