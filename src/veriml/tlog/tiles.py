"""C2SP tlog-tiles: the static read side of a log (`checkpoint`, `tile/<L>/<N>[.p/<W>]`,
`tile/entries/<N>[.p/<W>]`), produced as the exact bytes a tiles client expects."""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from veriml.errors import InvalidInput, NotFound
from veriml.tlog.log import Log

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
_PATH = re.compile(  # at most 6 index groups: indexes below 10^18, beyond any tree here
    r"tile/(?P<level>entries|0|[1-9][0-9]?)/(?P<index>(?:x[0-9]{3}/){0,5}[0-9]{3})(?:\.p/(?P<width>[1-9][0-9]{0,2}))?"
)


@dataclass(frozen=True, slots=True)
class TileRef:
    level: int | None  # None for an entry bundle
    index: int
    width: int  # 256 for a full tile

    @property
    def path(self) -> str:
        level = "entries" if self.level is None else str(self.level)
        partial = "" if self.width == TILE_WIDTH else f".p/{self.width}"
        return f"tile/{level}/{encode_index(self.index)}{partial}"


def encode_index(index: int) -> str:
    """1234067 -> x001/x234/067: three-digit path elements, all but the last prefixed with x."""
    groups = []
    while True:
        groups.append(f"{index % 1000:03d}")
        index //= 1000
        if index == 0:
            break
    groups.reverse()
    return "/".join([f"x{g}" for g in groups[:-1]] + [groups[-1]])


def parse_tile_path(path: str) -> TileRef:
    match = _PATH.fullmatch(path.lstrip("/"))
    if not match:
        raise InvalidInput(f"tile path {path!r:.80}: expected tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>]")
    groups = match.group("index").replace("x", "").split("/")
    if len(groups) > 1 and groups[0] == "000":
        raise InvalidInput(f"tile path {path!r:.80}: index has a leading zero group")
    width = int(match.group("width") or TILE_WIDTH)
    if width > TILE_WIDTH - 1 and match.group("width"):
        raise InvalidInput(f"tile path {path!r:.80}: partial width must be 1 to 255")
    level = None if match.group("level") == "entries" else int(match.group("level"))
    if level is not None and level > 63:
        raise InvalidInput(f"tile path {path!r:.80}: level must be 0 to 63")
    return TileRef(level, int("".join(groups)), width)


def _check_available(ref: TileRef, size: int) -> int:
    """The tree level of the tile's hashes, after checking the integrated tree holds all of them."""
    tree_level = TILE_HEIGHT * (ref.level or 0)
    available = size >> tree_level  # complete subtrees at that tree level
    if ref.index * TILE_WIDTH + ref.width > available:
        raise NotFound(f"{ref.path}: not in a tree of {size} entries")
    return tree_level


def read_tile(log: Log, ref: TileRef) -> bytes:
    """The hashes of a tile: at tile level L, the roots of the complete subtrees of height 8L."""
    if ref.level is None:
        return read_entries(log, ref)
    tree_level = _check_available(ref, log.integrated_size)
    return b"".join(log.reader.level_range(tree_level, ref.index * TILE_WIDTH, ref.width))


def read_entries(log: Log, ref: TileRef) -> bytes:
    """An entry bundle: each entry as a big-endian uint16 length and its bytes."""
    _check_available(TileRef(0, ref.index, ref.width), log.integrated_size)
    entries = log.reader.entries(ref.index * TILE_WIDTH, ref.width)
    return b"".join(struct.pack(">H", len(entry)) + entry for entry in entries)


def read_checkpoint(log: Log) -> bytes:
    latest = log.latest_checkpoint()
    if latest is None:
        raise NotFound(f"log {log.origin}: no checkpoint signed yet")
    return latest.to_text().encode("utf-8")
