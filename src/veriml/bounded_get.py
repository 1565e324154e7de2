"""A GET that a remote party cannot make expensive: at most `cap` bytes of body, read as they arrive, undecoded
(a compressed body is never expanded), within `deadline` seconds in all, however the answer comes: a body dripped
a byte at a time, headers dripped, or interim 1xx answers sent forever (the HTTP library reads past those
silently). The read runs in a worker thread the caller stops waiting for at the deadline; a read still running
then holds off further reads from the same origin until it ends, so a peer can keep at most one worker busy.
For reading what peers serve: checkpoints, tiles, audit answers."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

import httpx

IDENTITY = {"Accept-Encoding": "identity"}
STOP_POLL = 0.25  # seconds between looks at the caller's stop event while an answer arrives
_workers = ThreadPoolExecutor(max_workers=32, thread_name_prefix="bounded-get")
_overdue: dict[str, set[Future[tuple[int, bytes | None]]]] = {}  # origin -> its reads past their deadline
_lock = threading.Lock()


class DeadlineExceeded(httpx.TimeoutException):
    """The whole answer took longer than the deadline (an httpx.HTTPError, as any other timeout)."""


class Stopped(Exception):
    """The caller was asked to stop while it waited: nothing is said of the answer, or of whoever sends it."""


def bounded_get(client: httpx.Client, url: str, cap: int, deadline: float,
                headers: Mapping[str, str] | None = None, stop: threading.Event | None = None,
                ) -> tuple[int, bytes | None]:  # fmt: skip
    """(status, body), the body None once it passes `cap` bytes (nothing more is read). Raises httpx.HTTPError for
    a request that fails or passes the deadline, and Stopped as soon as `stop` is set (a node shutting down does
    not wait out a peer's slow answer)."""
    parsed = httpx.URL(url)
    origin = f"{parsed.scheme}://{parsed.host}:{parsed.port}"
    with _lock:
        # Every overdue read is kept, not only the last: reads from one origin may run side by side (peers behind
        # one address), and each one still running holds off the next.
        running = {f for f in _overdue.pop(origin, ()) if not f.done()}
        if running:
            _overdue[origin] = running
            raise DeadlineExceeded(f"GET {url}: an earlier answer from {origin} is still arriving past its deadline")
        end = time.monotonic() + deadline
        future = _workers.submit(_read, client, url, cap, end, {**IDENTITY, **(headers or {})})
    while True:
        left = max(end - time.monotonic(), 0) + 0.05
        try:
            return future.result(timeout=left if stop is None else min(left, STOP_POLL))
        except FutureTimeout:
            stopped = stop is not None and stop.is_set()
            if not stopped and time.monotonic() < end + 0.05:
                continue
            with _lock:
                _overdue.setdefault(origin, set()).add(future)
            if stopped:
                raise Stopped(f"GET {url}: stopped while waiting") from None
            raise DeadlineExceeded(f"GET {url}: no whole answer within {deadline:.0f} s") from None


def _read(client: httpx.Client, url: str, cap: int, end: float, headers: dict[str, str]) -> tuple[int, bytes | None]:
    with client.stream("GET", url, headers=headers) as response:
        body = bytearray()
        for chunk in response.iter_raw():
            body += chunk
            if len(body) > cap:
                return response.status_code, None
            if time.monotonic() > end:
                raise DeadlineExceeded(f"GET {url}: no whole answer in time")
        return response.status_code, bytes(body)
