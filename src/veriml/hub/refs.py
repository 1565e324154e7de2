"""Model names and references: `owner/name` (the latest version), `owner/name@N`, or a manifest id."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from veriml.codec import Digest
from veriml.errors import InvalidInput, shown

_SEGMENT = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
_NAME = re.compile(rf"{_SEGMENT}/{_SEGMENT}")
_REF = re.compile(rf"(?P<name>{_SEGMENT}/{_SEGMENT})(?:@(?P<version>[1-9][0-9]{{0,8}}))?")


def check_model_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidInput(
            f"model name {shown(name)}: expected 'owner/name' (letters, digits, '.', '_', '-'; up to 64 each)"
        )
    return name


@dataclass(frozen=True, slots=True)
class ModelRef:
    name: str | None = None
    version: int | None = None  # None: the latest
    manifest_id: Digest | None = None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        return _parse_ref(text)

    def __str__(self) -> str:
        if self.manifest_id is not None:
            return str(self.manifest_id)
        return f"{self.name}@{self.version}" if self.version else f"{self.name}"


@lru_cache(maxsize=1024)  # references repeat on every request; the value is immutable
def _parse_ref(text: str) -> ModelRef:
    if text.startswith("sha256:"):
        return ModelRef(manifest_id=Digest.parse(text, "manifest id"))
    match = _REF.fullmatch(text)
    if not match:
        raise InvalidInput(f"model reference {text!r:.80}: expected 'owner/name', 'owner/name@N' or a manifest id")
    version = match.group("version")
    return ModelRef(name=match.group("name"), version=int(version) if version else None)
