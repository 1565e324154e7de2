"""Content digests as a small value type with one text form, `sha256:<64 lowercase hex>`."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from veriml.errors import InvalidInput, shown

_TEXT = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class Digest:
    algorithm: str
    value: bytes

    def __post_init__(self) -> None:
        if self.algorithm != "sha256" or len(self.value) != 32:
            raise InvalidInput(f"digest: expected sha256 with 32 bytes, got {self.algorithm} with {len(self.value)}")

    @classmethod
    def of(cls, data: bytes | bytearray | memoryview) -> Digest:
        return cls("sha256", hashlib.sha256(data).digest())

    @classmethod
    def from_hasher(cls, hasher: Any) -> Digest:
        return cls("sha256", hasher.digest())

    @classmethod
    def parse(cls, text: object, what: str = "digest") -> Digest:
        # One text form only: upper-case hex or other algorithms would give one value two spellings.
        if not isinstance(text, str) or not _TEXT.fullmatch(text):
            raise InvalidInput(f"{what}: expected 'sha256:' and 64 lowercase hex digits, got {shown(text)}")
        return cls("sha256", bytes.fromhex(text[7:]))

    @property
    def hex(self) -> str:
        return self.value.hex()

    def __str__(self) -> str:
        return f"sha256:{self.value.hex()}"

    def __repr__(self) -> str:
        return f"Digest({self})"


def new_hasher() -> Any:
    """A streaming SHA-256 for data too large to hold at once; finish it with `Digest.from_hasher`."""
    return hashlib.sha256()
