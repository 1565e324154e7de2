"""A chat client fetches a language model's blob from a node to build its own tokenizer. A node could make that fetch
cost without bound: stream bytes without end (the client wrote them all to its cache directory before the hash
check failed), drip them a byte at a time (the client waited as long as the node liked), or serve other bytes and
so end the fetch before an honest node was asked. The fetch now stops as soon as a node sends more bytes than the
signed manifest states, gives up a node that falls behind the rate bounded_stream asks of a sender, and moves on
from any failing node to the next; nothing a failing node sent is left in the cache directory."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.unit.test_bounded_get import _head, dripping, serving
from tests.unit.test_llm_pure import write_gguf
from veriml import bounded_get, examples
from veriml.client import AsyncClient, Client
from veriml.client import tokenizer as tokenizer_module
from veriml.errors import Unavailable, VerificationFailed
from veriml.hub import SignedManifest
from veriml.identity import SigningKey
from veriml.service.publish import sign_manifest

ENDLESS = 64 << 20  # what the endless node sends before it stops itself, so that an unbounded client ends too


def sending(chunks: Callable[[], Iterator[bytes]], length: int | None = None):  # type: ignore[no-untyped-def]
    """An answer whose body is `chunks()`, with a Content-Length of `length`, or none (the body ends at close)."""

    def respond(connection: socket.socket) -> None:
        connection.sendall(_head(length) if length is not None else b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
        for chunk in chunks():
            connection.sendall(chunk)

    return respond


def endless() -> Iterator[bytes]:
    chunk = b"\0" * (64 << 10)
    for _ in range(ENDLESS // len(chunk)):
        yield chunk


def file_chunks(path: Path) -> Callable[[], Iterator[bytes]]:
    def chunks() -> Iterator[bytes]:
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                yield chunk

    return chunks


def zeros(size: int) -> Callable[[], Iterator[bytes]]:
    """`size` bytes that are not the blob: a liar's copy of the stated length."""

    def chunks() -> Iterator[bytes]:
        for start in range(0, size, 1 << 20):
            yield b"\0" * min(1 << 20, size - start)

    return chunks


def problem(status: int, kind: str):  # type: ignore[no-untyped-def]
    body = f'{{"type": "https://veriml.dev/problems/{kind}", "detail": "not for you"}}'.encode()

    def respond(connection: socket.socket) -> None:
        head = f"HTTP/1.1 {status} No\r\nContent-Type: application/problem+json\r\nContent-Length: {len(body)}\r\n"
        connection.sendall(head.encode() + b"Connection: close\r\n\r\n" + body)

    return respond


def left_in(cache: Path) -> list[Path]:
    return [path for path in cache.rglob("*") if path.is_file()]


def publish(path: Path) -> SignedManifest:
    return sign_manifest(path, name="alice/tiny", version=1, parent=None, publisher=SigningKey.generate("alice"))


@pytest.fixture
def tiny(tmp_path: Path) -> tuple[SignedManifest, Path]:
    """A GGUF of 270 bytes (metadata only), published."""
    path = write_gguf(tmp_path / "tiny.gguf")
    return publish(path), path


@pytest.fixture
def no_llama(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fetch alone: no llama.cpp needed, and the 'tokenizer' is the path of the checked, cached blob."""
    monkeypatch.setattr(tokenizer_module, "llama_module", lambda: None)
    monkeypatch.setattr(tokenizer_module, "Tokenizer", lambda path: path)


def more_than(node: str, manifest: SignedManifest) -> str:
    blob, size = manifest.body.blob, manifest.body.size
    return f"node {node}: blob {blob}: sent more than the {size} bytes its manifest states"


def fetched(nodes: list[str], manifest: SignedManifest, cache: Path):  # type: ignore[no-untyped-def]
    with Client(nodes, cache_dir=cache) as client:
        return client.tokenizer(manifest)


def test_a_node_sending_endless_bytes_is_cut_off_at_the_size_its_manifest_states(tiny, no_llama, tmp_path) -> None:
    manifest, _ = tiny
    with serving(sending(endless)) as url, pytest.raises(Unavailable) as refused:
        fetched([url], manifest, tmp_path / "cache")
    assert more_than(url.rstrip("/"), manifest) in str(refused.value)
    assert left_in(tmp_path / "cache") == []


def test_no_byte_past_the_stated_size_is_written(tmp_path) -> None:
    from veriml.client.blob_fetch import stream_blob

    padded = write_gguf(tmp_path / "padded.gguf", {"general.architecture": "llama", "llama.context_length": 256,
                                                    "general.description": "x" * 300_000})  # fmt: skip
    blob, size = publish(padded).body.blob, padded.stat().st_size
    written: list[int] = []
    with (
        serving(sending(endless)) as url,
        httpx.Client(timeout=5.0) as http,
        pytest.raises(Unavailable, match="sent more than"),
    ):
        stream_blob(http, url.rstrip("/"), blob, size, lambda chunk: written.append(len(chunk)))
    assert 0 < sum(written) <= size


def test_a_node_dripping_the_blob_is_given_up(tiny, no_llama, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(bounded_get, "STREAM_GRACE", 0.5)
    monkeypatch.setattr(bounded_get, "STREAM_MIN_RATE", 1024)
    manifest, _ = tiny
    # The blob's 270 bytes at 50 bytes a second would take 5 s; each byte comes well inside any read timeout.
    with serving(dripping(manifest.body.size, 0.02)) as url:
        started = time.monotonic()
        with pytest.raises(Unavailable) as refused:
            fetched([url], manifest, tmp_path / "cache")
        elapsed = time.monotonic() - started
    assert f"node {url.rstrip('/')}: DeadlineExceeded" in str(refused.value)
    assert "under the 1024 bytes a second a sender must keep up" in str(refused.value)
    assert elapsed < 3, f"gave up only after {elapsed:.1f} s"
    assert left_in(tmp_path / "cache") == []


def test_lying_nodes_are_passed_over_for_an_honest_one(tiny, no_llama, tmp_path) -> None:
    """Other bytes of the stated length, too few bytes, and a refusal: each is noted and the next node asked."""
    manifest, path = tiny
    size = manifest.body.size
    with (
        serving(sending(zeros(size), size)) as other,
        serving(sending(zeros(size - 1), size - 1)) as short,
        serving(problem(403, "permission-denied")) as refusing,
        serving(sending(file_chunks(path), size)) as honest,
    ):
        cached = fetched([other, short, refusing, honest], manifest, tmp_path / "cache")
        assert cached.read_bytes() == path.read_bytes()
        assert left_in(tmp_path / "cache") == [cached]
        with Client([other, honest], cache_dir=tmp_path / "cache") as client:
            assert client.tokenizer(manifest) == cached
            # No node was asked, so the rotation that spreads requests over the nodes has not moved on.
            assert client.nodes.order() == [other.rstrip("/"), honest.rstrip("/")]
        # With no honest node, each liar's failure is named, and the wrong bytes make it a VerificationFailed.
        with pytest.raises(VerificationFailed) as refused:
            fetched([other, short, refusing], manifest, tmp_path / "other")
    reasons = str(refused.value)
    assert f"node {other.rstrip('/')}: blob {manifest.body.blob}: the bytes served hash to" in reasons
    assert f"node {short.rstrip('/')}: blob {manifest.body.blob}: sent {size - 1} of the {size} bytes" in reasons
    assert f"node {refusing.rstrip('/')}: not for you" in reasons
    assert left_in(tmp_path / "other") == []


def test_the_async_client_cuts_off_endless_bytes_too(tiny, no_llama, tmp_path) -> None:
    manifest, path = tiny
    cache = tmp_path / "cache"

    async def fetch(nodes: list[str]) -> Path:
        async with AsyncClient(nodes, cache_dir=cache) as client:
            return await client.tokenizer(manifest)

    with serving(sending(endless)) as url, serving(sending(file_chunks(path), manifest.body.size)) as honest:
        with pytest.raises(Unavailable) as refused:
            asyncio.run(fetch([url]))
        assert more_than(url.rstrip("/"), manifest) in str(refused.value)
        assert left_in(cache) == []
        assert asyncio.run(fetch([url, honest])).read_bytes() == path.read_bytes()


def test_a_real_tokenizer_comes_from_the_honest_node_after_a_liar(tmp_path) -> None:
    pytest.importorskip("llama_cpp", reason="the llm extra is installed by `make install`")
    model = examples.smollm2_path()
    if model is None:
        pytest.skip("SmolLM2 GGUF not found: `make install` fetches it")
    manifest = sign_manifest(model, name="smol/lm", version=1, parent=None, publisher=SigningKey.generate("smol"))
    size = manifest.body.size
    with serving(sending(zeros(size), size)) as liar, serving(sending(file_chunks(model), size)) as honest:
        tokenizer = fetched([liar, honest], manifest, tmp_path / "cache")
    assert tokenizer.prompt_tokens(manifest, [{"role": "user", "content": "Hi"}])
    assert left_in(tmp_path / "cache") == [tmp_path / "cache" / "blobs" / f"{manifest.body.blob.hex}.gguf"]
