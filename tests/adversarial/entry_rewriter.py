"""For the audit attack nodes: rewrite what a caller is served for chosen log entries, whether it asks for one
(`/v1/log/entries/{index}`) or several at once (`/v1/log/entries?indices=...`, what auditors ask).

`rewrite(index, entry)` returns the entry to serve, changed or not, or a problem `{"index", "status", "detail"}`
to answer in its place.
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


def rewriting(app, rewrite: Rewrite):  # type: ignore[no-untyped-def]
    async def wrapped(scope, receive, send):  # type: ignore[no-untyped-def]
        path = scope.get("path", "") if scope["type"] == "http" else ""
        one = ONE.fullmatch(path)
        if one is None and path != SEVERAL:
            await app(scope, receive, send)
            return
        start, chunks = {}, []

        async def capture(message):  # type: ignore[no-untyped-def]
            if message["type"] == "http.response.start":
                start.update(message)
            else:
                chunks.append(message.get("body", b""))

        await app(scope, receive, capture)
        status, body = start["status"], b"".join(chunks)
        if status == 200:
            answer = json.loads(body)
            if one is not None:
                answer = rewrite(int(one[1]), answer)
                if _is_problem(answer):
                    status, answer = answer["status"], {"detail": answer["detail"]}
            else:
                answer["entries"] = [e if _is_problem(e) else rewrite(e["index"], e) for e in answer["entries"]]
            body = json.dumps(answer).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return wrapped
