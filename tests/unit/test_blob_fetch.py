"""A verifier fetching a model from nodes to re-execute it: a node dripping its bytes is given up for the next one
once it falls behind the rate bounded_stream asks of a sender, and one serving other bytes is passed over."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from tests.unit.test_bounded_get import _head, serving
from veriml import bounded_get
from veriml.client.blob_fetch import fetch_blob
from veriml.codec import Digest
from veriml.errors import NotFound

MODEL = bytes(range(256)) * 8


def test_a_dripping_node_is_given_up_for_the_next(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bounded_get, "STREAM_GRACE", 1.0)
    monkeypatch.setattr(bounded_get, "STREAM_MIN_RATE", 1024)

    def drip(connection: socket.socket) -> None:
        connection.sendall(_head(len(MODEL)))
        for byte in MODEL:  # 20 bytes a second: 100 s for the whole model
            connection.sendall(bytes([byte]))
            time.sleep(0.05)

    def whole(connection: socket.socket) -> None:
        connection.sendall(_head(len(MODEL)) + MODEL)

    with serving(drip) as dripping, serving(whole) as honest, httpx.Client(timeout=5.0) as http:
        started = time.monotonic()
        assert fetch_blob(http, [dripping, honest], Digest.of(MODEL)) == MODEL
        assert time.monotonic() - started < 3


def test_bytes_that_hash_otherwise_are_passed_over() -> None:
    def other(connection: socket.socket) -> None:
        connection.sendall(_head(5) + b"hello")

    with serving(other) as url, httpx.Client(timeout=5.0) as http, pytest.raises(NotFound, match="hash to"):
        fetch_blob(http, [url], Digest.of(MODEL))
