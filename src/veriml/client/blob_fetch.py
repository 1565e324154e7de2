"""Blobs by content address from nodes, for a verifier that does not hold them (a model to re-execute, a proof's
settings, verification key and SRS). A node is trusted for nothing: the first bytes that hash to the address
win, and no node can make this process hold more than MAX_BLOB bytes."""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from veriml.codec import Digest
from veriml.errors import NotFound, Unavailable

MAX_BLOB = 4 << 30


def download(http: httpx.Client, url: str, limit: int = MAX_BLOB) -> bytes:
    chunks, size = [], 0
    with http.stream("GET", url) as response:
        if response.status_code != 200:
            raise Unavailable(f"HTTP {response.status_code}")
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > limit:
                raise Unavailable(f"more than {limit} bytes")
            chunks.append(chunk)
    return b"".join(chunks)


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
