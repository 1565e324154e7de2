"""Proofs from any node's public tiles (C2SP tlog-tiles): inclusion and consistency proofs for any tree size the
log covers, computed by the reader, so building evidence, an anchor or an audit needs nothing but static GETs and
trusts nothing the log says beyond its signed checkpoints: a proof from wrong tiles does not verify."""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from veriml.bounded_get import bounded_get
from veriml.errors import NotFound, Unavailable, VerificationFailed
from veriml.tlog import SignedCheckpoint, merkle
from veriml.tlog.merkle import HASH_SIZE, SubtreeKey
from veriml.tlog.tiles import TILE_HEIGHT, TILE_WIDTH, TileRef

CHECKPOINT_BYTES = 1 << 16  # a checkpoint note with its cosignatures is well under this


class TileLog:
    """A remote log read through its tiles. Hashes of complete subtrees come from the tile at the level just
    below them, folded; every tile read is checked for length and cached for the reader's life."""

    def __init__(self, url: str, size: int, timeout: float = 10.0, http: httpx.Client | None = None) -> None:
        """`http`, when given, is the caller's client (kept open on close); else the reader makes its own."""
        self.url = url.rstrip("/")
        self.size = merkle.check_size(size)
        self._owned = http is None
        self._http = httpx.Client(timeout=timeout) if http is None else http
        self._timeout = timeout
        self._tiles: dict[str, bytes] = {}

    def close(self) -> None:
        if self._owned:
            self._http.close()

    def __enter__(self) -> TileLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def checkpoint(self) -> SignedCheckpoint:
        return SignedCheckpoint.parse(self._get("checkpoint"), f"{self.url} checkpoint")

    def _get(self, path: str, size: int = CHECKPOINT_BYTES) -> bytes:
        """The resource at `path`, read up to `size` bytes (a tile's exact length), within a deadline."""
        try:
            status, body = bounded_get(self._http, f"{self.url}/{path}", size, 3 * self._timeout)
        except httpx.HTTPError as exc:
            raise Unavailable(f"log {self.url}: {path}: {type(exc).__name__}") from exc
        if status == 404:
            raise NotFound(f"log {self.url}: {path} not found")
        if status != 200:
            raise Unavailable(f"log {self.url}: {path} answered {status}")
        if body is None:
            raise VerificationFailed(f"log {self.url}: {path} is longer than {size} bytes")
        return body

    def _tile(self, tile_level: int, index: int) -> bytes:
        available = self.size >> (TILE_HEIGHT * tile_level)  # complete subtrees at that tile level
        width = min(TILE_WIDTH, available - index * TILE_WIDTH)
        if width <= 0:
            raise NotFound(f"log {self.url}: tile {tile_level}/{index} is beyond a tree of {self.size}")
        path = TileRef(tile_level, index, width).path
        if path not in self._tiles:
            data = self._get(path, width * HASH_SIZE)
            if len(data) != width * HASH_SIZE:
                raise VerificationFailed(f"log {self.url}: {path} has {len(data)} bytes, expected {width * 32}")
            self._tiles[path] = data
        return self._tiles[path]

    def hashes(self, keys: Sequence[SubtreeKey]) -> list[bytes]:
        """merkle.HashReader: the root of complete subtree (level, index) for each key."""
        found = []
        for level, index in keys:
            tile_level, height = divmod(level, TILE_HEIGHT)
            first = index << height  # the subtree's first hash at the tile level
            tile = self._tile(tile_level, first // TILE_WIDTH)
            offset = first % TILE_WIDTH
            row = [tile[i * HASH_SIZE : (i + 1) * HASH_SIZE] for i in range(offset, offset + (1 << height))]
            found.append(merkle.root_of_leaves(row))  # a complete row of 2^height hashes folds to its subtree root
        return found

    def root(self) -> bytes:
        return merkle.root_hash(self.size, self.hashes)

    def inclusion_proof(self, index: int) -> list[bytes]:
        return merkle.inclusion_proof(index, self.size, self.hashes)

    def consistency_proof(self, old: int) -> list[bytes]:
        return merkle.consistency_proof(old, self.size, self.hashes)
