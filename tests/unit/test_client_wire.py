"""The sync client's lean transport for POST /v1/infer (client/wire.py) and its shared parsing (protocol): a
response is taken only when it is complete and well formed, a connection only reused when the server kept it,
and an answer parses to exactly what `Bundle.from_json` gives."""

from __future__ import annotations

import json
import select
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest

from veriml.client.protocol import parse_bundle, parse_infer_bytes, parsed_manifest
from veriml.client.wire import Wire, _parse
from veriml.errors import InvalidInput, Unavailable, VerificationFailed
from veriml.receipts import Bundle
from veriml.verify import verify_bundle

OK = b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 7\r\n\r\n{"a":1}'


def parse(data: bytes, ended: bool = False):  # type: ignore[no-untyped-def]
    return _parse(bytearray(data), ended)


def test_a_response_is_taken_whole_by_its_length_its_chunks_or_the_connection_end():
    assert parse(OK) == (200, [("content-type", "application/json"), ("content-length", "7")], b'{"a":1}', True)
    for cut in range(1, len(OK)):
        assert parse(OK[:cut]) is None
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n"
    assert parse(chunked)[2] == b"abcde"
    for cut in range(1, len(chunked)):
        assert parse(chunked[:cut]) is None
    to_end = b"HTTP/1.0 200 OK\r\n\r\nbody"
    assert parse(to_end) is None and parse(to_end, ended=True) == (200, [], b"body", False)
    interim = b"HTTP/1.1 100 Continue\r\n\r\n" + OK
    assert parse(interim)[2] == b'{"a":1}'
    assert parse(b"HTTP/1.1 204 No Content\r\n\r\n")[2] == b""


def test_the_connection_is_kept_only_when_the_server_keeps_it():
    assert parse(OK)[3] is True
    assert parse(OK.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1))[3] is False
    assert parse(OK.replace(b"HTTP/1.1", b"HTTP/1.0"))[3] is False
    # h11 closes every HTTP/1.0 connection, keep-alive asked or not: one that might not be kept is never reused.
    kept = OK.replace(b"HTTP/1.1", b"HTTP/1.0").replace(b"\r\n\r\n", b"\r\nConnection: keep-alive\r\n\r\n")
    assert not parse(kept)[3]


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"HTTP/2 200 OK\r\n\r\n", "illegal status line"),
        (b"HTTP/1.1 2000 OK\r\n\r\n", "illegal status line"),
        (b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", "illegal header line"),
        (b"HTTP/1.1 200 OK\r\n x: y\r\n\r\n", "continuation line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "bad Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", "conflicting Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nab", "bytes after the answer"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "Only Transfer-Encoding: chunked"),
        (b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 0\r\n\r\n", "unsupported Content-Encoding"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n", "both"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "illegal chunk header"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n", "illegal chunk header"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc", "malformed chunk footer"),
    ],
)
def test_a_response_this_reader_does_not_understand_is_refused_not_guessed_at(data, why):
    with pytest.raises(ValueError, match=why):
        parse(data)


class Server:
    """A real socket server on 127.0.0.1 answering each request with `answer(number)` (raw bytes, or None to
    close the connection without a word); it counts the connections it accepted."""

    def __init__(self, answer: Callable[[int], bytes | None]) -> None:
        self.answer = answer
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted = 0
        self.requests: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._connection, args=(conn,), daemon=True).start()

    def _connection(self, conn: socket.socket) -> None:
        with conn:
            buffer = b""
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + buffer[:length])
                buffer = buffer[length:]
                reply = self.answer(len(self.requests))
                if reply is None:
                    return
                conn.sendall(reply)
                if b"Connection: close" in reply:
                    return

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[[int], bytes | None]], Server]]:
    servers: list[Server] = []

    def start(answer: Callable[[int], bytes | None]) -> Server:
        servers.append(Server(answer))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_one_connection_carries_request_after_request_and_a_closed_one_is_replaced(serve):
    server = serve(lambda n: OK if n != 2 else OK.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1))
    wire = Wire(timeout=5)
    try:
        replies = [wire.post(server.url, "/v1/infer", b'{"n":%d}' % n) for n in range(4)]
    finally:
        wire.close()
    assert [r.content for r in replies] == [b'{"a":1}'] * 4 and [r.status_code for r in replies] == [200] * 4
    assert server.accepted == 2  # the server closed the second one: the third request went on a new one
    first = server.requests[0]
    assert first.startswith(b"POST /v1/infer HTTP/1.1\r\n") and first.endswith(b'\r\n\r\n{"n":0}')
    assert b"\r\nContent-Type: application/json\r\n" in first and b"\r\nContent-Length: 7\r\n" in first


def test_an_idle_connection_the_server_dropped_is_not_reused(serve):
    server = serve(lambda n: OK)
    wire = Wire(timeout=5)
    try:
        assert wire.post(server.url, "/v1/infer", b"{}").status_code == 200
        idle = next(iter(wire._idle.values()))
        idle.shutdown(socket.SHUT_WR)  # our side half-closes: the server's reader ends and it closes the connection
        select.select([idle], [], [], 5)  # until the server's close arrives
        assert wire.post(server.url, "/v1/infer", b"{}").status_code == 200
    finally:
        wire.close()
    assert server.accepted == 2


def test_unreachable_silent_and_cut_off_nodes_are_unavailable(serve):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        refused_url = f"http://127.0.0.1:{unused.getsockname()[1]}"
    wire = Wire(timeout=0.5)
    try:
        with pytest.raises(Unavailable, match=f"node {refused_url}: ConnectError"):
            wire.post(refused_url, "/v1/infer", b"{}")
        silent = serve(lambda n: b"")
        with pytest.raises(Unavailable, match="ReadTimeout"):
            wire.post(silent.url, "/v1/infer", b"{}")
        cut = serve(lambda n: None)
        with pytest.raises(Unavailable, match="closed the connection before a complete answer"):
            wire.post(cut.url, "/v1/infer", b"{}")
        half = serve(lambda n: OK[:-3] + b"")
        with pytest.raises(Unavailable, match="ReadTimeout"):
            wire.post(half.url, "/v1/infer", b"{}")
    finally:
        wire.close()


def test_several_nodes_are_asked_at_once_and_each_answer_is_taken_as_it_comes(serve):
    slow_release = threading.Event()

    def slow(n: int) -> bytes:
        slow_release.wait(5)
        return OK

    slow_server, fast_server = serve(slow), serve(lambda n: OK.replace(b'{"a":1}', b'{"b":2}'))
    wire = Wire(timeout=5)
    try:
        exchanges = {wire.start(url, "/v1/infer", b"{}"): url for url in (slow_server.url, fast_server.url)}
        first = wire.wait(exchanges)
        assert exchanges.pop(first) == fast_server.url and wire.result(first).content == b'{"b":2}'
        slow_release.set()
        second = wire.wait(exchanges)
        assert wire.result(second).content == b'{"a":1}'
    finally:
        wire.close()


def test_an_answer_parses_to_what_bundle_from_json_gives(bundle):
    document = json.loads(bundle.to_bytes())
    assert parse_bundle(document).to_bytes() == Bundle.from_json(document).to_bytes() == bundle.to_bytes()
    for broken in (
        {**document, "extra": 1},
        {**document, "format_version": 1},
        {**document, "log_proof": 3},
        {**document, "attestations": [1]},
        {**document, "zk_proof": "x"},
        {**document, "manifest": {**document["manifest"], "signature": "AAAA"}},
        {**document, "receipt": {"body": {}, "signature": ""}},
        {**document, "salt": "00"},
        {**document, "inputs": {"x": {"dtype": "float32", "shape": [1], "data": ""}}},
    ):
        with pytest.raises(InvalidInput) as theirs:
            Bundle.from_json(broken)
        with pytest.raises(InvalidInput) as ours:
            parse_bundle(broken)
        assert str(ours.value) == str(theirs.value)


def test_a_manifest_is_parsed_once_per_exact_json_value_and_never_for_another(bundle):
    document = json.loads(bundle.to_bytes())["manifest"]
    first = parsed_manifest(document)
    assert parsed_manifest(json.loads(json.dumps(document))) is first
    signature = document["signature"]
    other = {**document, "signature": ("B" if signature[0] == "A" else "A") + signature[1:]}
    forged = parsed_manifest(other)
    assert forged is not first and forged.id == first.id and forged.signature != first.signature
    report = verify_bundle(replace(bundle, manifest=forged), level="signed")
    assert report.check("manifest.signature").status == "fail"
    as_float = {**document, "body": {**document["body"], "version": float(document["body"]["version"])}}
    assert json.dumps(as_float) != json.dumps(document)
    try:
        again = parsed_manifest(as_float)
    except InvalidInput:
        again = None
    assert again is not first  # one JSON value, one parse: 1.0 is not 1


def test_a_node_answering_anything_but_json_is_refused(bundle):
    with pytest.raises(VerificationFailed, match="node n: malformed inference answer"):
        parse_infer_bytes("n", b"<html>", None)  # type: ignore[arg-type]
