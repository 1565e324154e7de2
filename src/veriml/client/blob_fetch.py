"""Blobs by content address from nodes, for a verifier that does not hold them (a model to re-execute, a proof's
settings, verification key and SRS) and for a client's tokenizer (a language model's blob). A node is trusted for
nothing: the first bytes that hash to the address win, no node can make this process take more than MAX_BLOB
bytes (or, where a signed manifest states the blob's size, more than that), and none can hold it longer than the
rate `bounded_stream` asks of a sender allows (a node dripping its bytes is given up for the next)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import httpx

from veriml.bounded_get import bounded_stream
from veriml.client.protocol import raise_for_problem
from veriml.codec import Digest
from veriml.errors import NotFound, Unavailable

MAX_BLOB = 4 << 30
PROBLEM_CAP = 64 << 10  # a node's problem answer is read up to this, for its kind and detail


def _capped(chunks: Iterator[bytes], limit: int, refusal: str) -> Iterator[bytes]:
    """`chunks` while they come to at most `limit` bytes; Unavailable(refusal) as soon as they pass it, so nothing
    past the limit is read or handed on."""
    received = 0
    for chunk in chunks:
        received += len(chunk)
        if received > limit:
            raise Unavailable(refusal)
        yield chunk


def download(http: httpx.Client, url: str, limit: int = MAX_BLOB) -> bytes:
    def collect(status: int, chunks: Iterator[bytes]) -> bytes:
        if status != 200:
            raise Unavailable(f"HTTP {status}")
        return b"".join(_capped(chunks, limit, f"more than {limit} bytes"))

    return bounded_stream(http, url, collect)


def fetch_blob(http: httpx.Client, urls: Sequence[str], digest: Digest) -> bytes:
    """The blob `digest` from the first of `urls` that serves bytes hashing to it."""
    failures = []
    for url in urls:
        try:
            data = download(http, f"{url.rstrip('/')}/v1/blobs/{digest}")
        except (httpx.HTTPError, Unavailable) as exc:
            failures.append(f"{url}: {exc}")
            continue
        if Digest.of(data) == digest:
            return data
        failures.append(f"{url}: served bytes that hash to {Digest.of(data)}")
    raise NotFound(f"blob {digest}: no node served it ({'; '.join(failures)})")


def stream_blob(http: httpx.Client, node: str, digest: Digest, size: int, write: Callable[[bytes], None]) -> None:
    """Hand node `node`'s copy of blob `digest` to `write` as it arrives, when it is `size` bytes long (the size its
    signed manifest states); the caller checks the hash. A node sending more is cut off at `size` bytes, one sending
    fewer is refused (Unavailable), a problem answer raises its kind, and a node falling behind bounded_stream's
    rate is given up (Unavailable, naming DeadlineExceeded). Every error names the node."""
    what = f"node {node}: blob {digest}"

    def consume(status: int, chunks: Iterator[bytes]) -> None:
        if status >= 400:
            problem = _capped(chunks, PROBLEM_CAP, f"{what}: a problem answer of more than {PROBLEM_CAP} bytes")
            raise_for_problem(node, httpx.Response(status, content=b"".join(problem)))
        if status != 200:
            raise Unavailable(f"{what}: HTTP {status}")
        received = 0
        for chunk in _capped(chunks, size, f"{what}: sent more than the {size} bytes its manifest states"):
            write(chunk)
            received += len(chunk)
        if received < size:
            raise Unavailable(f"{what}: sent {received} of the {size} bytes its manifest states")

    try:
        bounded_stream(http, f"{node}/v1/blobs/{digest}", consume)
    except httpx.HTTPError as exc:
        raise Unavailable(f"node {node}: {type(exc).__name__}: {exc}") from exc
