"""Blobs by content address from nodes, for a verifier that does not hold them (a model to re-execute, a proof's
settings, verification key and SRS). A node is trusted for nothing: the first bytes that hash to the address
win, no node can make this process hold more than MAX_BLOB bytes, and none can hold it longer than the rate
`bounded_stream` asks of a sender allows (a node dripping its bytes is given up for the next)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import httpx

from veriml.bounded_get import bounded_stream
from veriml.codec import Digest
from veriml.errors import NotFound, Unavailable

MAX_BLOB = 4 << 30


def download(http: httpx.Client, url: str, limit: int = MAX_BLOB) -> bytes:
    def collect(status: int, chunks: Iterator[bytes]) -> bytes:
        if status != 200:
            raise Unavailable(f"HTTP {status}")
        kept, size = [], 0
        for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise Unavailable(f"more than {limit} bytes")
            kept.append(chunk)
        return b"".join(kept)

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
