"""bounded_get against a raw HTTP server on 127.0.0.1 that answers as a hostile peer would: dripping, too long,
or compressed past any size."""

from __future__ import annotations

import gzip
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import httpx
import pytest

from veriml import bounded_get as module
from veriml.bounded_get import DeadlineExceeded, Stopped, bounded_get


@contextmanager
def serving(respond) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A one-connection-at-a-time server; `respond(connection)` writes the whole answer."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def run() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.recv(65536)
                with suppress(OSError):
                    respond(connection)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/"
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def _head(length: int, extra: str = "") -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n{extra}Connection: close\r\n\r\n".encode()


def test_a_dripping_answer_ends_at_the_deadline() -> None:
    def drip(connection: socket.socket) -> None:
        connection.sendall(_head(100))
        for _ in range(100):
            connection.sendall(b"x")
            time.sleep(0.2)  # each byte well inside the per-read timeout

    with serving(drip) as url, httpx.Client(timeout=1.0) as client:
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded):
            bounded_get(client, url, cap=1000, deadline=1.0)
        assert time.monotonic() - started < 2.5


def test_a_caller_asked_to_stop_does_not_wait_out_the_deadline() -> None:
    def drip(connection: socket.socket) -> None:
        connection.sendall(_head(100))
        for _ in range(100):
            connection.sendall(b"x")
            time.sleep(0.2)

    stop = threading.Event()
    with serving(drip) as url, httpx.Client(timeout=1.0) as client:
        threading.Timer(0.5, stop.set).start()
        started = time.monotonic()
        with pytest.raises(Stopped):
            bounded_get(client, url, cap=1000, deadline=30.0, stop=stop)
        assert time.monotonic() - started < 2.0
    with serving(lambda c: c.sendall(_head(5) + b"hello")) as url, httpx.Client() as client:
        assert bounded_get(client, url, cap=5, deadline=10, stop=threading.Event()) == (200, b"hello")


def test_every_overdue_read_from_an_origin_holds_off_the_next() -> None:
    """Two reads from one origin at once (peers behind one address), both past their deadline: both are kept
    as overdue, so neither leaves a worker busy untracked, and a third read is refused while either runs."""
    with serving(lambda c: time.sleep(3)) as url, httpx.Client(timeout=5.0) as client:
        failures: list[BaseException] = []

        def read() -> None:
            try:
                bounded_get(client, url, cap=1000, deadline=0.5)
            except DeadlineExceeded as exc:
                failures.append(exc)

        readers = [threading.Thread(target=read) for _ in range(2)]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join()
        assert len(failures) == 2
        origin = url.rstrip("/")
        assert len(module._overdue[origin]) == 2
        with pytest.raises(DeadlineExceeded, match="still arriving"):
            bounded_get(client, url, cap=1000, deadline=0.5)


def test_an_answer_past_the_cap_is_not_read_on() -> None:
    with serving(lambda c: c.sendall(_head(1 << 20) + b"y" * (1 << 20))) as url, httpx.Client() as client:
        assert bounded_get(client, url, cap=4096, deadline=10) == (200, None)
    with serving(lambda c: c.sendall(_head(5) + b"hello")) as url, httpx.Client() as client:
        assert bounded_get(client, url, cap=5, deadline=10) == (200, b"hello")


def test_a_compressed_answer_is_never_expanded() -> None:
    bomb = gzip.compress(b"\0" * (64 << 20))  # 64 MiB of zeros in about 64 KiB
    seen = {}

    def send(connection: socket.socket) -> None:
        connection.sendall(_head(len(bomb), "Content-Encoding: gzip\r\n") + bomb)

    with serving(send) as url, httpx.Client() as client:
        status, body = bounded_get(client, url, cap=1 << 20, deadline=10)
        seen["body"] = body
    assert status == 200 and seen["body"] == bomb  # the bytes sent, not 64 MiB


def test_interim_answers_sent_forever_end_at_the_deadline_and_hold_off_that_origin() -> None:
    """The HTTP library reads past 1xx answers without a word: a peer sending one every 0.2 s never lets a read
    time out. The caller still stops at the deadline, and the next read from that peer fails at once while the
    first is still arriving (one worker per peer at most)."""
    stop = threading.Event()

    def early_hints(connection: socket.socket) -> None:
        while not stop.is_set():
            connection.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n")
            time.sleep(0.2)

    with serving(early_hints) as url, httpx.Client(timeout=1.0) as client:
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded):
            bounded_get(client, url, cap=1000, deadline=1.0)
        assert time.monotonic() - started < 1.5
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded, match="still arriving"):
            bounded_get(client, url, cap=1000, deadline=5.0)
        assert time.monotonic() - started < 0.5
        stop.set()
