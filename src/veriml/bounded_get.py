"""A GET that a remote party cannot make expensive: at most `cap` bytes of body, read as they arrive, undecoded
(a compressed body is never expanded), within `deadline` seconds in all, however the answer comes: a body dripped
a byte at a time, headers dripped, or interim 1xx answers sent forever (the HTTP library reads past those
silently). The read runs in a worker thread the caller stops waiting for at the deadline; a read still running
then holds off further reads from the same origin until it ends, so a peer can keep at most one worker busy.
For reading what peers serve: checkpoints, tiles, audit answers, node info and manifests.

`bounded_stream` is the same for a body too large to hold (a model's bytes): it is handed on as it arrives, and
instead of one deadline the sender must keep up an average rate after a grace period."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

import httpx

T = TypeVar("T")

IDENTITY = {"Accept-Encoding": "identity"}
STOP_POLL = 0.25  # seconds between looks at the caller's stop event while an answer arrives
# What bounded_stream asks of a sender by default: after STREAM_GRACE seconds, an average of STREAM_MIN_RATE bytes a
# second (a 1 GB model may take 70 minutes). A node fetching a model from a peer, and a verifier from a node, use it.
STREAM_GRACE = 60.0
STREAM_MIN_RATE = 256 << 10
# Reads from one origin at once, at most, and streams beside them: a party cannot take more of the workers than
# this, however many requests of this process make it read from it (N callers asking for models only it holds,
# say). Streams have places of their own, so a node's own long transfers from a peer never crowd out its reads.
MAX_PER_ORIGIN = 4
MAX_STREAMS_PER_ORIGIN = 2
_workers = ThreadPoolExecutor(max_workers=64, thread_name_prefix="bounded-get")
_overdue: dict[str, set[Future[Any]]] = {}  # origin -> its reads past their deadline
_reading: dict[tuple[str, bool], set[Future[Any]]] = {}  # (origin, a stream) -> its reads queued or running
_lock = threading.Lock()


class DeadlineExceeded(httpx.TimeoutException):
    """The whole answer took longer than the deadline (an httpx.HTTPError, as any other timeout)."""


class Stopped(Exception):
    """The caller was asked to stop while it waited: nothing is said of the answer, or of whoever sends it."""


def _origin(url: str) -> str:
    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.host}:{parsed.port}"


def _start(origin: str, url: str, read: Callable[[], T], stream: bool = False) -> Future[T]:
    """Run `read` in a worker, unless a read from `origin` is still running past its time, or as many reads (or
    streams) from it as it may have are."""
    with _lock:
        # Every overdue read is kept, not only the last: reads from one origin may run side by side (peers behind
        # one address), and each one still running holds off the next.
        running = {f for f in _overdue.pop(origin, ()) if not f.done()}
        if running:
            _overdue[origin] = running
            raise DeadlineExceeded(f"GET {url}: an earlier answer from {origin} is still arriving past its deadline")
        key = (origin, stream)
        reading = {f for f in _reading.pop(key, ()) if not f.done()}
        if len(reading) >= (MAX_STREAMS_PER_ORIGIN if stream else MAX_PER_ORIGIN):
            _reading[key] = reading
            raise DeadlineExceeded(f"{url}: {len(reading)} answers from {origin} are arriving already")
        future = _workers.submit(read)
        _reading[key] = reading | {future}
        return future


def _overdue_now(origin: str, future: Future[Any]) -> None:
    """The caller gave up on `future`: a read that never started is dropped, one running holds off the origin."""
    if future.cancel():
        return
    with _lock:
        _overdue.setdefault(origin, set()).add(future)


def bounded_get(client: httpx.Client, url: str, cap: int, deadline: float,
                headers: Mapping[str, str] | None = None, stop: threading.Event | None = None,
                ) -> tuple[int, bytes | None]:  # fmt: skip
    """(status, body), the body None once it passes `cap` bytes (nothing more is read). Raises httpx.HTTPError for
    a request that fails or passes the deadline, and Stopped as soon as `stop` is set (a node shutting down does
    not wait out a peer's slow answer)."""
    status, _, body = bounded_request(client, "GET", url, cap, deadline, headers=headers, stop=stop)
    return status, body


def bounded_request(client: httpx.Client, method: str, url: str, cap: int, deadline: float,
                    content: bytes | None = None, headers: Mapping[str, str] | None = None,
                    stop: threading.Event | None = None) -> tuple[int, httpx.Headers, bytes | None]:  # fmt: skip
    """`bounded_get` for any method, with a body to send, and the answer's headers too."""
    origin = _origin(url)
    end = time.monotonic() + deadline
    future = _start(origin, url, lambda: _read(client, method, url, content, cap, end,
                                               {**IDENTITY, **(headers or {})}))  # fmt: skip
    while True:
        left = max(end - time.monotonic(), 0) + 0.05
        try:
            return future.result(timeout=left if stop is None else min(left, STOP_POLL))
        except FutureTimeout:
            stopped = stop is not None and stop.is_set()
            if not stopped and time.monotonic() < end + 0.05:
                continue
            _overdue_now(origin, future)
            if stopped:
                raise Stopped(f"{method} {url}: stopped while waiting") from None
            raise DeadlineExceeded(f"{method} {url}: no whole answer within {deadline:.0f} s") from None


def _read(client: httpx.Client, method: str, url: str, content: bytes | None, cap: int, end: float,
          headers: dict[str, str]) -> tuple[int, httpx.Headers, bytes | None]:  # fmt: skip
    with client.stream(method, url, content=content, headers=headers) as response:
        body = bytearray()
        for chunk in response.iter_raw():
            body += chunk
            if len(body) > cap:
                return response.status_code, response.headers, None
            if time.monotonic() > end:
                raise DeadlineExceeded(f"{method} {url}: no whole answer in time")
        return response.status_code, response.headers, bytes(body)


class _Progress:
    __slots__ = ("abandoned", "received")

    def __init__(self) -> None:
        self.received, self.abandoned = 0, False


def bounded_stream(client: httpx.Client, url: str, consume: Callable[[int, Iterator[bytes]], T],
                   grace: float | None = None, min_rate: float | None = None, stop: threading.Event | None = None,
                   ) -> T:  # fmt: skip
    """`consume(status, chunks)`'s result, `chunks` being the body as it arrives (undecoded), consumed in a worker
    thread. The caller waits while the sender keeps up `min_rate` bytes a second on average after the first `grace`
    seconds; then (or once `stop` is set) it raises DeadlineExceeded (or Stopped), and the worker's next chunk
    raises in `consume` instead of coming, so whatever `consume` holds is let go there. `consume`'s own errors
    reach the caller as they are. `grace` and `min_rate` default to STREAM_GRACE and STREAM_MIN_RATE."""
    grace = STREAM_GRACE if grace is None else grace
    min_rate = STREAM_MIN_RATE if min_rate is None else min_rate
    origin = _origin(url)
    progress = _Progress()
    started = time.monotonic()
    future = _start(origin, url, lambda: _stream(client, url, consume, progress), stream=True)
    while True:
        try:
            return future.result(timeout=STOP_POLL)
        except FutureTimeout:
            stopped = stop is not None and stop.is_set()
            elapsed = time.monotonic() - started
            if not stopped and elapsed <= grace + progress.received / min_rate:
                continue
            progress.abandoned = True
            _overdue_now(origin, future)
            if stopped:
                raise Stopped(f"GET {url}: stopped while waiting") from None
            raise DeadlineExceeded(f"GET {url}: {progress.received} bytes in {elapsed:.0f} s, under the "
                                   f"{min_rate:.0f} bytes a second a sender must keep up") from None  # fmt: skip


def _stream(client: httpx.Client, url: str, consume: Callable[[int, Iterator[bytes]], T], progress: _Progress) -> T:
    with client.stream("GET", url, headers=IDENTITY) as response:

        def chunks() -> Iterator[bytes]:
            # Each read as it comes (no re-chunking): a check made per megabyte would wait out any drip.
            for chunk in response.iter_raw():
                if progress.abandoned:
                    raise DeadlineExceeded(f"GET {url}: given up by the caller")
                progress.received += len(chunk)
                yield chunk

        return consume(response.status_code, chunks())
