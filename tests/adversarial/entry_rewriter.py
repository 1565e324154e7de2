"""For the audit attack nodes: rewrite what a caller is served for chosen log entries, whether it asks for one
(`/v1/log/entries/{index}`) or several at once (`/v1/log/entries?indices=...`, what auditors ask).

`rewrite(index, entry)` returns the entry to serve, changed or not, or a problem `{"index", "status", "detail"}`
to answer in its place. `captured` and `answer` are for the attack nodes that change other answers.
"""

import json
import re
from collections.abc import Callable
from typing import Any

ONE = re.compile(r"/v1/log/entries/(\d+)")
SEVERAL = "/v1/log/entries"
Rewrite = Callable[[int, dict[str, Any]], dict[str, Any]]


def _is_problem(answer: dict[str, Any]) -> bool:
    return "status" in answer and "receipt" not in answer


async def captured(app, scope, receive) -> tuple[int, bytes]:  # type: ignore[no-untyped-def]
    """What the honest app answers a request: its status and whole body."""
    start, chunks = {}, []

    async def capture(message):  # type: ignore[no-untyped-def]
        if message["type"] == "http.response.start":
            start.update(message)
        else:
            chunks.append(message.get("body", b""))

    await app(scope, receive, capture)
    return start["status"], b"".join(chunks)


async def answer(send, status: int, body: bytes, content_type: bytes = b"application/json") -> None:  # type: ignore[no-untyped-def]
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def rewriting(app, rewrite: Rewrite):  # type: ignore[no-untyped-def]
    async def wrapped(scope, receive, send):  # type: ignore[no-untyped-def]
        path = scope.get("path", "") if scope["type"] == "http" else ""
        one = ONE.fullmatch(path)
        if one is None and path != SEVERAL:
            await app(scope, receive, send)
            return
        status, body = await captured(app, scope, receive)
        if status == 200:
            served = json.loads(body)
            if one is not None:
                served = rewrite(int(one[1]), served)
                if _is_problem(served):
                    status, served = served["status"], {"detail": served["detail"]}
            else:
                served["entries"] = [e if _is_problem(e) else rewrite(e["index"], e) for e in served["entries"]]
            body = json.dumps(served).encode()
        await answer(send, status, body)

    return wrapped
