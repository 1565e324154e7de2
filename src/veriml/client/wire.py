"""The sync client's lean transport for its one hot request, POST /v1/infer: HTTP/1.1 keep-alive connections
on plain sockets, and several nodes asked at once from one thread, each answer taken as soon as it is complete.

httpx spends about half a millisecond of CPU on each request (models, hooks, cookies, its transport layers);
a quorum of K asks K nodes and checks K answers, so that cost, and K threads taking turns on the GIL, were most
of what a `quorum:3` call cost over a `signed` one. Everything else (and every URL this cannot serve as httpx
would: https, or a proxy named in the environment) keeps going through httpx. The answer is read by h11, the
HTTP/1.1 protocol library httpx itself reads with (this module does only the sockets): a complete status line
and headers, a body by Content-Length, chunks, or up to the connection's end; a response h11 refuses, or one
in an encoding nobody asked for, is Unavailable, never guessed at.
"""

from __future__ import annotations

import errno
import os
import select
import selectors
import socket
import time
import urllib.request
from collections.abc import Collection
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import h11
import httpx

from veriml.errors import Unavailable

_MAX_HEAD = 64 * 1024  # status line and headers
_MAX_BODY = 1 << 30  # as the bundle's own limit (receipts.bundle.MAX_BUNDLE_BYTES)


@dataclass(frozen=True, slots=True)
class Reply:
    """A complete response as read off the wire (an httpx.Response is made only for an error's problem JSON)."""

    status_code: int
    headers: list[tuple[str, str]]
    content: bytes

    def as_httpx(self) -> httpx.Response:
        return httpx.Response(self.status_code, headers=self.headers, content=self.content)


@dataclass(eq=False)  # hashed by identity: a client keeps the exchanges it waits on in a dict
class Exchange:
    """One request on one connection, from sending to a complete response (or the reason there is none)."""

    url: str
    sock: socket.socket
    request: bytes
    reused: bool
    deadline: float
    connecting: bool = False
    buffer: bytearray = field(default_factory=bytearray)
    response: Reply | None = None
    error: Unavailable | None = None
    keep: bool = False  # the connection may carry the next request

    def fail(self, what: str) -> None:
        self.error = Unavailable(f"node {self.url}: {what}")


class Wire:
    """Keep-alive connections to the nodes, at most one idle per node, and the loop that waits on several."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._idle: dict[str, socket.socket] = {}
        self._serves: dict[str, bool] = {}
        self._selector = selectors.DefaultSelector()

    def close(self) -> None:
        for sock in self._idle.values():
            sock.close()
        self._idle.clear()
        self._selector.close()

    def serves(self, url: str) -> bool:
        """Plain http to a host and port, with no proxy in the environment for it (httpx would use one; like
        httpx's client, this reads the environment once per node)."""
        known = self._serves.get(url)
        if known is None:
            known = self._serves[url] = _serves(url)
        return known

    def post(self, url: str, path: str, body: bytes) -> Reply:
        """One POST, waited for; Unavailable if the node cannot be reached or answers nothing readable."""
        exchange = self.start(url, path, body)
        while True:
            done = self.wait([exchange])
            if done is exchange:
                return self.result(exchange)

    def start(self, url: str, path: str, body: bytes, content_type: str = "application/json") -> Exchange:
        """Send a POST on the node's idle connection, or begin connecting a new one (without waiting for it:
        the request goes out from `wait` once connected, so one unreachable node does not hold up the others)."""
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port or 80
        authority = host if parts.port is None else f"{host}:{port}"
        if ":" in host:
            authority = f"[{host}]" if parts.port is None else f"[{host}]:{port}"
        request = (
            f"POST {parts.path.rstrip('/')}{path} HTTP/1.1\r\nHost: {authority}\r\nAccept: */*\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\nUser-Agent: veriml-client\r\n\r\n"
        ).encode("ascii") + body
        deadline = time.monotonic() + self.timeout
        sock = self._idle.pop(url, None)
        if sock is not None and _closed_by_peer(sock):
            sock.close()
            sock = None
        if sock is not None:
            exchange = Exchange(url, sock, request, reused=True, deadline=deadline)
            self._send(exchange)
            return exchange
        try:
            family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
            sock = socket.socket(family, kind, proto)
        except OSError as exc:
            exchange = Exchange(url, socket.socket(), request, reused=False, deadline=deadline)
            exchange.sock.close()
            exchange.fail(f"ConnectError: {exc}")
            return exchange
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        exchange = Exchange(url, sock, request, reused=False, deadline=deadline, connecting=True)
        error = sock.connect_ex(address)
        if error == 0:
            exchange.connecting = False
            self._send(exchange)
        elif error not in _IN_PROGRESS:
            exchange.fail(f"ConnectError: {_strerror(error)}")
        return exchange

    def wait(self, exchanges: Collection[Exchange]) -> Exchange:
        """The first of `exchanges` that is over (answered or failed), after reading what has arrived."""
        for exchange in exchanges:
            if exchange.response is not None or exchange.error is not None:
                return exchange
        selector = self._selector
        for exchange in exchanges:
            event = selectors.EVENT_WRITE if exchange.connecting else selectors.EVENT_READ
            selector.register(exchange.sock, event, exchange)
        try:
            while True:
                now = time.monotonic()
                first = min(exchanges, key=lambda e: e.deadline)
                if first.deadline <= now:
                    first.fail("ConnectTimeout" if first.connecting else "ReadTimeout: no answer in time")
                    return first
                for key, _ in selector.select(first.deadline - now):
                    exchange = key.data
                    if exchange.connecting:
                        self._connected(exchange)
                        if exchange.error is None:
                            selector.modify(exchange.sock, selectors.EVENT_READ, exchange)
                    else:
                        self._read(exchange)
                    if exchange.response is not None or exchange.error is not None:
                        return exchange
        finally:
            for exchange in exchanges:
                selector.unregister(exchange.sock)

    def result(self, exchange: Exchange) -> Reply:
        """The response of a finished exchange (its connection kept for the next request when it can be), or its
        error raised."""
        if exchange.error is not None or exchange.response is None:
            exchange.sock.close()
            raise exchange.error or Unavailable(f"node {exchange.url}: no answer")
        if exchange.keep and exchange.url not in self._idle:
            self._idle[exchange.url] = exchange.sock
        else:
            exchange.sock.close()
        return exchange.response

    def abandon(self, exchange: Exchange) -> None:
        """An exchange whose answer is no longer wanted: its connection is closed (it may still be answering)."""
        exchange.sock.close()

    # ---- one exchange ------------------------------------------------------------------------------------

    def _connected(self, exchange: Exchange) -> None:
        error = exchange.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        exchange.connecting = False
        if error:
            exchange.fail(f"ConnectError: {_strerror(error)}")
            return
        self._send(exchange)

    def _send(self, exchange: Exchange) -> None:
        sock = exchange.sock
        try:
            sock.settimeout(max(exchange.deadline - time.monotonic(), 0.001))
            sock.sendall(exchange.request)
            sock.setblocking(False)
        except OSError as exc:
            exchange.fail(f"WriteError: {type(exc).__name__}: {exc}")

    def _read(self, exchange: Exchange) -> None:
        try:
            data = exchange.sock.recv(262144)
        except BlockingIOError:
            return
        except OSError as exc:
            exchange.fail(f"ReadError: {type(exc).__name__}: {exc}")
            return
        exchange.deadline = time.monotonic() + self.timeout  # the timeout bounds each wait for bytes, as httpx's
        if data:
            exchange.buffer += data
            if len(exchange.buffer) > _MAX_HEAD + _MAX_BODY:
                exchange.fail("answer too large")
                return
        try:
            parsed = _parse(exchange.buffer, ended=not data)
        except ValueError as exc:
            exchange.fail(f"RemoteProtocolError: {exc}")
            return
        if parsed is None:
            if not data:
                exchange.fail("RemoteProtocolError: the server closed the connection before a complete answer")
            return
        status, headers, body, keep = parsed
        exchange.response = Reply(status, headers, body)
        exchange.keep = keep and data != b""


def _serves(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or parts.username or parts.password:
        return False
    proxies = urllib.request.getproxies()
    if not any(key in proxies for key in ("http", "all")):
        return True
    return bool(urllib.request.proxy_bypass(parts.hostname))


def _parse(buffer: bytearray, ended: bool) -> tuple[int, list[tuple[str, str]], bytes, bool] | None:
    """Status, headers, body and whether the connection may be reused, once `buffer` holds a complete response to
    a POST (None until then), read by h11, the HTTP/1.1 protocol library httpx reads with. `ended`: the server
    closed the connection after what the buffer holds. What h11 refuses, a body encoding nobody asked for, or
    bytes after the answer raise ValueError."""
    reader = h11.Connection(h11.CLIENT, max_incomplete_event_size=_MAX_HEAD)
    reader.send(h11.Request(method="POST", target="/", headers=[("host", "node"), ("content-length", "0")]))
    reader.send(h11.EndOfMessage())  # the framing of an answer depends on what was asked: always a POST here
    if buffer:  # (empty bytes would tell h11 the connection ended)
        reader.receive_data(bytes(buffer))
    status, headers, body, closed = 0, [], bytearray(), False
    try:
        while True:
            event = reader.next_event()
            if event is h11.NEED_DATA:
                if not ended:
                    if len(buffer) > _MAX_HEAD and not status:
                        raise ValueError("status line and headers too long")
                    return None
                if closed:
                    raise ValueError("the server closed the connection before a complete answer")
                reader.receive_data(b"")  # a body that runs to the connection's end ends here
                closed = True
                continue
            if isinstance(event, h11.InformationalResponse):  # 100 Continue, 103 Early Hints: the answer follows
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
                headers = [(name.decode("latin-1"), value.decode("latin-1"))
                           for name, value in event.headers.raw_items()]  # fmt: skip
                named = {name.lower() for name, _ in headers}
                if {"content-length", "transfer-encoding"} <= named:  # RFC 9112 §6.1: a sign of smuggling
                    raise ValueError("both Content-Length and chunked")
                for name, value in headers:
                    if name.lower() == "content-encoding" and value.lower() != "identity":
                        raise ValueError(f"unsupported Content-Encoding {value[:40]!r} (none was accepted)")
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
    except h11.RemoteProtocolError as exc:
        if closed:
            raise ValueError("the server closed the connection before a complete answer") from exc
        raise ValueError(str(exc)) from exc
    leftover, _ = reader.trailing_data
    if leftover:
        raise ValueError("bytes after the answer")
    return status, headers, bytes(body), reader.their_state is h11.DONE and not closed


def _closed_by_peer(sock: socket.socket) -> bool:
    """An idle keep-alive connection the server has closed (or sent something unasked on) reads as ready."""
    try:
        ready, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(ready)


def _strerror(error: int) -> str:
    return f"[Errno {error}] {os.strerror(error)}"


_IN_PROGRESS = {errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN}
