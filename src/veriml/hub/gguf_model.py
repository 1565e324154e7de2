"""Reading a GGUF language-model file: check its header and read the metadata a manifest records (chat template,
context length, architecture), without loading the weights. Pure Python, so publishing needs no inference engine.

The layout is the GGUF spec's (ggml docs/gguf.md): magic "GGUF", version, tensor count, key-value count, then
typed key-value pairs, then the tensor infos.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from veriml.errors import InvalidInput

MAGIC = b"GGUF"
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
# Bounds that no real model reaches, so a corrupt length cannot make the reader allocate or loop without end.
_MAX_STRING = 64 << 20
_MAX_ITEMS = 1 << 24
_MAX_KEYS = 1 << 16
# Arrays longer than this (the tokenizer's vocabulary and merges) are skipped, not kept.
_KEEP_ARRAY = 64


@dataclass(frozen=True, slots=True)
class GgufDescription:
    version: int
    architecture: str
    context_length: int
    chat_template: str
    model_name: str
    tensor_count: int
    metadata: dict[str, Any]  # scalar and short-array metadata; long arrays (the vocabulary) are left out


class _Reader:
    def __init__(self, handle: BinaryIO, path: Path) -> None:
        self.handle, self.path = handle, path

    def take(self, size: int) -> bytes:
        data = self.handle.read(size)
        if len(data) != size:
            raise InvalidInput(f"{self.path}: not a GGUF file (truncated header)")
        return data

    def scalar(self, kind: int) -> Any:
        fmt = _SCALARS[kind]
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        size = self.scalar(10)
        if size > _MAX_STRING:
            raise InvalidInput(f"{self.path}: not a GGUF file (a {size}-byte string in the header)")
        try:
            return self.take(size).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"{self.path}: not a GGUF file (a header string is not UTF-8)") from exc

    def value(self, kind: int) -> Any:
        if kind in _SCALARS:
            return self.scalar(kind)
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            item_kind, count = self.scalar(4), self.scalar(10)
            if count > _MAX_ITEMS or (item_kind not in _SCALARS and item_kind != _STRING):
                raise InvalidInput(f"{self.path}: not a GGUF file (array of type {item_kind} with {count} items)")
            items = [self.value(item_kind) for _ in range(count)]
            return items if count <= _KEEP_ARRAY else None
        raise InvalidInput(f"{self.path}: not a GGUF file (unknown metadata value type {kind})")


def describe_gguf(path: Path) -> GgufDescription:
    """Check the GGUF header and read the metadata a manifest records; InvalidInput for anything else."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"{path}: no such file")
    with open(path, "rb") as handle:
        reader = _Reader(handle, path)
        magic = handle.read(4)
        if magic != MAGIC:
            raise InvalidInput(f"{path}: not a GGUF file (starts with {magic!r}, expected {MAGIC!r})")
        version = reader.scalar(4)
        if version not in (2, 3):
            raise InvalidInput(f"{path}: GGUF version {version} is not supported (expected 2 or 3)")
        tensor_count, key_count = reader.scalar(10), reader.scalar(10)
        if key_count > _MAX_KEYS or tensor_count > _MAX_ITEMS:
            raise InvalidInput(f"{path}: not a GGUF file ({key_count} keys, {tensor_count} tensors)")
        metadata: dict[str, Any] = {}
        for _ in range(key_count):
            key = reader.string()
            value = reader.value(reader.scalar(4))
            if value is not None:
                metadata[key] = value
        for _ in range(tensor_count):  # tensor infos: name, dims, type, offset
            reader.string()
            dims = reader.scalar(4)
            if dims > 8:
                raise InvalidInput(f"{path}: not a GGUF file (a tensor with {dims} dimensions)")
            reader.take(8 * dims + 4 + 8)
    architecture = metadata.get("general.architecture")
    if not isinstance(architecture, str) or not architecture:
        raise InvalidInput(f"{path}: GGUF metadata has no general.architecture")
    context_length = metadata.get(f"{architecture}.context_length")
    if not isinstance(context_length, int) or context_length < 1:
        raise InvalidInput(f"{path}: GGUF metadata has no {architecture}.context_length")
    chat_template = metadata.get("tokenizer.chat_template", "")
    if not isinstance(chat_template, str):
        raise InvalidInput(f"{path}: GGUF metadata tokenizer.chat_template is not text")
    name = metadata.get("general.name", "")
    return GgufDescription(
        version=version,
        architecture=architecture,
        context_length=context_length,
        chat_template=chat_template,
        model_name=name if isinstance(name, str) else "",
        tensor_count=tensor_count,
        metadata=metadata,
    )


def is_gguf(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == MAGIC
    except OSError:
        return False
