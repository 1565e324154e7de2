"""A GET that a remote party cannot make expensive: at most `cap` bytes of body, read as they arrive, undecoded
(a compressed body is never expanded), within `deadline` seconds in all (a body dripped a byte at a time, each
byte inside the per-read timeout, still ends). For reading what peers serve: checkpoints, tiles, audit answers."""

from __future__ import annotations

import time
from collections.abc import Mapping

import httpx

IDENTITY = {"Accept-Encoding": "identity"}


class DeadlineExceeded(httpx.TimeoutException):
    """The whole answer took longer than the deadline (an httpx.HTTPError, as any other timeout)."""


def bounded_get(client: httpx.Client, url: str, cap: int, deadline: float,
                headers: Mapping[str, str] | None = None) -> tuple[int, bytes | None]:  # fmt: skip
    """(status, body), the body None once it passes `cap` bytes (nothing more is read). Raises httpx.HTTPError for
    a request that fails or passes the deadline."""
    end = time.monotonic() + deadline
    with client.stream("GET", url, headers={**IDENTITY, **(headers or {})}) as response:
        body = bytearray()
        for chunk in response.iter_raw():
            body += chunk
            if len(body) > cap:
                return response.status_code, None
            if time.monotonic() > end:
                raise DeadlineExceeded(f"GET {url}: no whole answer within {deadline:.0f} s")
        return response.status_code, bytes(body)
