"""The sync client's lean transport for its one hot request, POST /v1/infer: HTTP/1.1 keep-alive connections
on plain sockets, and several nodes asked at once from one thread, each answer taken as soon as it is complete.

httpx spends about half a millisecond of CPU on each request (models, hooks, cookies, h11's state machine);
a quorum of K asks K nodes and checks K answers, so that cost, and K threads taking turns on the GIL, were most
of what a `quorum:3` call cost over a `signed` one. Everything else (and every URL this cannot serve as httpx
would: https, or a proxy named in the environment) keeps going through httpx. The answer is read as httpx
would read it, or refused: a complete status line and headers, a body by Content-Length, chunks, or up to
the connection's end; a response this reader does not understand is Unavailable, never guessed at.
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
    """Status, headers, body and whether the connection may be reused, once `buffer` holds a complete response
    (None until then). `ended`: the server closed the connection after what the buffer holds."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if len(buffer) > _MAX_HEAD:
            raise ValueError("status line and headers too long")
        return None
    lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if version not in ("HTTP/1.1", "HTTP/1.0") or not code.isdigit() or rest[3:4] not in ("", " "):
        raise ValueError(f"malformed status line {lines[0][:80]!r}")
    status = int(code)
    if status < 200:  # an interim answer (100 Continue, 103 Early Hints): the real one follows
        rest_of = buffer[end + 4 :]
        return _parse(bytearray(rest_of), ended) if rest_of else None
    headers: list[tuple[str, str]] = []
    length: int | None = None
    chunked = False
    keep = version == "HTTP/1.1"
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise ValueError(f"malformed header line {line[:80]!r}")
        value = value.strip()
        headers.append((name, value))
        lowered = name.lower()
        if lowered == "content-length":
            if not value.isdigit() or (length is not None and int(value) != length):
                raise ValueError(f"bad Content-Length {value[:40]!r}")
            length = int(value)
        elif lowered == "transfer-encoding":
            if value.lower() != "chunked":
                raise ValueError(f"unsupported Transfer-Encoding {value[:40]!r}")
            chunked = True
        elif lowered == "content-encoding" and value.lower() != "identity":
            raise ValueError(f"unsupported Content-Encoding {value[:40]!r} (none was accepted)")
        elif lowered == "connection":
            tokens = {token.strip().lower() for token in value.split(",")}
            keep = "close" not in tokens and (keep or "keep-alive" in tokens)
    start = end + 4
    if status in (204, 304):
        return status, headers, b"", keep
    if chunked:
        if length is not None:
            raise ValueError("both Content-Length and chunked")
        body = _dechunk(buffer, start)
        return None if body is None else (status, headers, body, keep)
    if length is not None:
        if len(buffer) - start < length:
            return None
        if len(buffer) - start > length:
            raise ValueError("bytes after the answer")
        return status, headers, bytes(buffer[start:]), keep
    # No length: the body runs to the connection's end (RFC 9112 §6.3), which cannot then carry another request.
    return (status, headers, bytes(buffer[start:]), False) if ended else None


def _dechunk(buffer: bytearray, start: int) -> bytes | None:
    """The body of a complete chunked message from `start` (RFC 9112 §7.1), None while incomplete."""
    body = bytearray()
    at = start
    while True:
        end = buffer.find(b"\r\n", at)
        if end < 0:
            return None
        size_text = bytes(buffer[at:end]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError as exc:
            raise ValueError(f"bad chunk size {size_text[:20]!r}") from exc
        if size_text.startswith((b"-", b"+", b"0x", b"0X")) or size < 0:
            raise ValueError(f"bad chunk size {size_text[:20]!r}")
        at = end + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n\r\n", end)
            if trailer_end < 0:
                return None
            if trailer_end + 4 != len(buffer):
                raise ValueError("bytes after the answer")
            return bytes(body)
        if len(buffer) < at + size + 2:
            return None
        if buffer[at + size : at + size + 2] != b"\r\n":
            raise ValueError("chunk not followed by CRLF")
        body += buffer[at : at + size]
        at += size + 2


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
