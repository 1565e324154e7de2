"""Reading inference inputs from files: JSON (plain nested lists, or veriml's tensor form) or NumPy .npz."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from veriml.codec import parse_json
from veriml.errors import InvalidInput, NotFound

MAX_INPUT_FILE_BYTES = 1 << 30


def load_input_file(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"input file {path}: no such file")
    if path.stat().st_size > MAX_INPUT_FILE_BYTES:
        raise InvalidInput(f"input file {path}: larger than {MAX_INPUT_FILE_BYTES} bytes")
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as archive:
                return {name: archive[name] for name in archive.files}
        except (zipfile.BadZipFile, ValueError, OSError) as exc:
            raise InvalidInput(f"input file {path}: not a valid .npz archive ({exc})") from exc
    if path.suffix == ".json":
        data = parse_json(path.read_bytes(), f"input file {path}")
        if not isinstance(data, dict) or not data:
            raise InvalidInput(f"input file {path}: expected a JSON object mapping input names to values")
        return data
    raise InvalidInput(f"input file {path}: expected a .json or .npz file")
