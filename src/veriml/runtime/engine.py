"""The engine interface: what the service and the verifier need from an engine, whatever the model format.
Tensors in, tensors out (a language model's are token ids and generation parameters), and the fingerprint whose
runtime class says which other runs its results can be compared with bitwise."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

import numpy as np

from veriml.codec import Digest
from veriml.runtime.fingerprint import RuntimeFingerprint

# Gives a model's bytes, or the path of a file already checked to hold them (large models are not read whole).
BlobLoader = Callable[[], "bytes | Path"]


class Engine(Protocol):
    name: str

    @property
    def fingerprint(self) -> RuntimeFingerprint: ...

    @property
    def runtime_class(self) -> str: ...

    def run(
        self, blob_id: Digest, load: BlobLoader, inputs: Mapping[str, np.ndarray], time_limit: float | None = None
    ) -> dict[str, np.ndarray]: ...
