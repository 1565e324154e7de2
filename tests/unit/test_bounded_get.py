"""bounded_get and bounded_stream against a raw HTTP server on 127.0.0.1 that answers as a hostile peer would:
dripping, too long, or compressed past any size."""

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
from veriml.bounded_get import DeadlineExceeded, Stopped, bounded_get, bounded_stream


@contextmanager
def serving(respond, side_by_side: bool = False) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A server on 127.0.0.1; `respond(connection)` writes the whole answer. One connection at a time, or with
    `side_by_side` each in a thread of its own, so that reads run side by side."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def answer(connection: socket.socket) -> None:
        with connection:
            connection.recv(65536)
            with suppress(OSError):
                respond(connection)

    def run() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            if side_by_side:
                threading.Thread(target=answer, args=(connection,), daemon=True).start()
            else:
                answer(connection)

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


def dripping(length: int, every: float):  # type: ignore[no-untyped-def]
    """An answer of `length` bytes sent one byte every `every` seconds: each well inside any read timeout."""

    def respond(connection: socket.socket) -> None:
        connection.sendall(_head(length))
        for _ in range(length):
            connection.sendall(b"x")
            time.sleep(every)

    return respond


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


def _collect(status: int, chunks: Iterator[bytes]) -> tuple[int, bytes]:
    return status, b"".join(chunks)


def test_a_stream_that_keeps_up_the_rate_is_handed_on_whole_however_long_it_takes() -> None:
    """3 s of body at 2 KiB/s, with a 0.5 s grace and a 1 KiB/s floor: never given up, each byte handed on."""

    def steady(connection: socket.socket) -> None:
        connection.sendall(_head(6 * 1024))
        for _ in range(30):
            connection.sendall(b"z" * 205)
            time.sleep(0.1)
        connection.sendall(b"z" * (6 * 1024 - 30 * 205))

    with serving(steady) as url, httpx.Client(timeout=2.0) as client:
        assert bounded_stream(client, url, _collect, grace=0.5, min_rate=1024) == (200, b"z" * 6 * 1024)


def test_a_dripping_stream_is_given_up_and_its_consumer_lets_go() -> None:
    """A body dripped at 10 bytes a second against a 1 KiB/s floor: given up just after the grace, and the consumer
    (running in the worker) gets an error at its next chunk, so it can close what it holds."""
    released = threading.Event()
    drip = dripping(100, 0.1)

    def consume(status: int, chunks: Iterator[bytes]) -> None:
        try:
            for _ in chunks:
                pass
        finally:
            released.set()

    with serving(drip) as url, httpx.Client(timeout=1.0) as client:
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded, match="bytes a second"):
            bounded_stream(client, url, consume, grace=1.0, min_rate=1024)
        assert 1.0 <= time.monotonic() - started < 2.5
        assert released.wait(2.0)


def test_dripped_headers_end_the_stream_too_and_hold_off_that_origin() -> None:
    """Headers sent a byte at a time never let a read time out; the caller still stops after the grace, and the
    next stream from that origin is refused at once while the first is still arriving."""
    stop = threading.Event()

    def drip_headers(connection: socket.socket) -> None:
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 1000:
            if stop.is_set():
                return
            connection.sendall(bytes([byte]))
            time.sleep(0.05)

    with serving(drip_headers) as url, httpx.Client(timeout=1.0) as client:
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded):
            bounded_stream(client, url, _collect, grace=0.8, min_rate=1 << 20)
        assert time.monotonic() - started < 2.5
        with pytest.raises(DeadlineExceeded, match="still arriving"):
            bounded_stream(client, url, _collect, grace=5.0, min_rate=1 << 20)
        stop.set()


def test_a_stream_consumers_own_error_reaches_the_caller() -> None:
    def refuse(status: int, chunks: Iterator[bytes]) -> None:
        raise ValueError(f"status {status}: not wanted")

    with (
        serving(lambda c: c.sendall(_head(5) + b"hello")) as url,
        httpx.Client() as client,
        pytest.raises(ValueError, match="status 200"),
    ):
        bounded_stream(client, url, refuse, grace=5.0, min_rate=1024)


def test_a_stream_stops_when_its_caller_is_asked_to() -> None:
    stop = threading.Event()
    with serving(dripping(100, 0.2)) as url, httpx.Client(timeout=1.0) as client:
        threading.Timer(0.5, stop.set).start()
        started = time.monotonic()
        with pytest.raises(Stopped):
            bounded_stream(client, url, _collect, grace=30.0, min_rate=1, stop=stop)
        assert time.monotonic() - started < 1.5


def test_one_origin_takes_at_most_its_share_of_the_workers() -> None:
    """Reads from one slow origin up to MAX_PER_ORIGIN at once; one more is refused at once, while a stream from it
    and a read from another origin go ahead: a party cannot take every worker by having many callers read from it,
    and a node's own transfers from a peer never crowd out its reads of that peer (an audit's, say)."""
    slow_reads: list[BaseException | tuple[int, bytes | None]] = []

    def read(client: httpx.Client, url: str) -> None:
        try:
            slow_reads.append(bounded_get(client, url, cap=1000, deadline=10))
        except Exception as exc:
            slow_reads.append(exc)

    def slow(connection: socket.socket) -> None:
        time.sleep(1.5)
        connection.sendall(_head(2) + b"ok")

    with serving(slow, side_by_side=True) as url, httpx.Client(timeout=5.0) as client:
        readers = [threading.Thread(target=read, args=(client, url)) for _ in range(module.MAX_PER_ORIGIN)]
        for reader in readers:
            reader.start()
        time.sleep(0.3)
        with pytest.raises(DeadlineExceeded, match="arriving already"):
            bounded_get(client, url, cap=1000, deadline=10)
        # A stream (a model's bytes) has places of its own: the reads in flight do not keep it out, nor it them.
        assert bounded_stream(client, url, _collect, grace=5.0, min_rate=1) == (200, b"ok")
        with serving(lambda c: c.sendall(_head(5) + b"hello")) as other:
            assert bounded_get(client, other, cap=1000, deadline=5) == (200, b"hello")
        for reader in readers:
            reader.join()
    assert slow_reads == [(200, b"ok")] * module.MAX_PER_ORIGIN


def test_a_read_given_up_before_it_started_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    """With every worker busy, a read waits in the queue; its caller gives up at its deadline, and the read is
    cancelled rather than left to run later and hold off its origin."""
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setattr(module, "_workers", ThreadPoolExecutor(max_workers=1))

    def occupy() -> None:
        with httpx.Client(timeout=5.0) as client:
            bounded_get(client, slow_url, cap=10, deadline=5)

    busy = threading.Thread(target=occupy)

    def slow(connection: socket.socket) -> None:
        time.sleep(1.5)
        connection.sendall(_head(2) + b"ok")

    with serving(slow, side_by_side=True) as slow_url, serving(lambda c: c.sendall(_head(5) + b"hello")) as quick:
        busy.start()
        time.sleep(0.2)
        with httpx.Client(timeout=5.0) as client:
            with pytest.raises(DeadlineExceeded):
                bounded_get(client, quick, cap=1000, deadline=0.5)
            assert quick.rstrip("/") not in module._overdue
            busy.join()
            assert bounded_get(client, quick, cap=1000, deadline=5) == (200, b"hello")



@pytest.mark.parametrize("call", ["info", "add-checkpoint"])
def test_a_peer_dripping_a_small_answer_is_given_up_within_its_timeouts(call: str) -> None:
    """A peer's JSON answers (node info, manifests) used to be read in 64 KiB pieces, so the deadline checked
    between pieces never came for a small answer dripped a byte at a time; a witness's add-checkpoint answer had
    no deadline at all (and checkpoints are cosigned one witness after another)."""
    from veriml.errors import Unavailable
    from veriml.node.peers import PeerClient

    with serving(dripping(200, 0.05)) as url:
        peer = PeerClient(url, timeout=0.5)
        started = time.monotonic()
        with pytest.raises(Unavailable, match="/v1/info" if call == "info" else "witness"):
            peer.info() if call == "info" else peer.add_checkpoint(b"old 0\n\nexample.org/log\n1\nAAAA\n")
        assert time.monotonic() - started < 2.5
        peer.close()
