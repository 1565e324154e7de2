"""A content-addressed blob store on disk: a blob lives at `sha256/<2 hex>/<64 hex>` under its own digest.

Writes stream into a temporary file while hashing, fsync, and only then rename into place, so a crash never
leaves a partial blob under a real id; reads that matter (loading a model to run) check the hash again, so a
blob damaged on disk is refused rather than run.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from veriml.codec import Digest
from veriml.codec.digest import new_hasher
from veriml.errors import NotFound, VerificationFailed
from veriml.fsutil import fsync_dir

CHUNK = 1 << 20
Progress = Callable[[int], None]  # called with the number of bytes just handled


def _chunks(source: BinaryIO | Iterable[bytes]) -> Iterator[bytes]:
    if hasattr(source, "read"):
        while chunk := source.read(CHUNK):  # type: ignore[union-attr]
            yield chunk
    else:
        yield from source  # type: ignore[misc]


class BlobWriter:
    """Streams into a temporary file while hashing; `commit` renames it under its digest if it matches."""

    def __init__(self, store: BlobStore, expected: Digest | None, progress: Progress | None) -> None:
        self._store, self._expected, self._progress = store, expected, progress
        self._hasher = new_hasher()
        fd, name = tempfile.mkstemp(prefix="blob-", dir=store._tmp)
        self._tmp = Path(name)
        self._handle = os.fdopen(fd, "wb")
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self._hasher.update(chunk)
        self._handle.write(chunk)
        self.size += len(chunk)
        if self._progress:
            self._progress(len(chunk))

    def commit(self) -> Digest:
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        digest = Digest.from_hasher(self._hasher)
        if self._expected is not None and digest != self._expected:
            raise VerificationFailed(f"blob: expected {self._expected}, but the bytes hash to {digest}")
        final = self._store.path(digest)
        if not final.is_file():  # content-addressed: the same bytes may be here already
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self._tmp, final)
            fsync_dir(final.parent)
        return digest

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._handle.closed:
            self._handle.close()
        self._tmp.unlink(missing_ok=True)


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._tmp = self.root / "tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)

    def path(self, digest: Digest) -> Path:
        return self.root / digest.algorithm / digest.hex[:2] / digest.hex

    def has(self, digest: Digest) -> bool:
        return self.path(digest).is_file()

    def size(self, digest: Digest) -> int:
        return self._existing(digest).stat().st_size

    def _existing(self, digest: Digest) -> Path:
        path = self.path(digest)
        if not path.is_file():
            raise NotFound(f"blob {digest}: not in this store")
        return path

    def put(
        self,
        source: BinaryIO | Iterable[bytes],
        expected: Digest | None = None,
        progress: Progress | None = None,
    ) -> Digest:
        """Store a stream; return its digest. With `expected`, bytes that hash otherwise are refused."""
        with self.writer(expected, progress) as writer:
            for chunk in _chunks(source):
                writer.write(chunk)
            return writer.commit()

    def writer(self, expected: Digest | None = None, progress: Progress | None = None) -> BlobWriter:
        """A writer for bytes that arrive piece by piece (an HTTP upload, a replica being fetched)."""
        return BlobWriter(self, expected, progress)

    def put_file(self, path: Path, expected: Digest | None = None, progress: Progress | None = None) -> Digest:
        with open(path, "rb") as handle:
            return self.put(handle, expected, progress)

    def read_verified(self, digest: Digest) -> bytes:
        """The whole blob, after checking that its bytes still hash to its id."""
        data = self._existing(digest).read_bytes()
        actual = Digest.of(data)
        if actual != digest:
            raise VerificationFailed(
                f"blob {digest}: stored bytes are damaged ({len(data)} bytes hash to {actual}); "
                "fetch it again from its publisher or a peer"
            )
        return data

    def open(self, digest: Digest) -> BinaryIO:
        return open(self._existing(digest), "rb")

    def check(self, digest: Digest) -> None:
        """Re-hash a stored blob in chunks; raise VerificationFailed if it no longer matches its id."""
        hasher = new_hasher()
        with self.open(digest) as handle:
            for chunk in _chunks(handle):
                hasher.update(chunk)
        actual = Digest.from_hasher(hasher)
        if actual != digest:
            raise VerificationFailed(f"blob {digest}: stored bytes are damaged (they hash to {actual})")
