"""The onnxruntime engine: CPU sessions with pinned determinism settings, cached by blob id."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnxruntime as ort

from veriml.codec import Digest
from veriml.errors import InvalidInput, RunTooLong
from veriml.runtime.engine import BlobLoader
from veriml.runtime.fingerprint import RuntimeFingerprint, cpu_features, machine
from veriml.runtime.run_limit import limited_run
from veriml.runtime.settings import RuntimeSettings

PROVIDER = "CPUExecutionProvider"
_OPTIMIZATION = {
    "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


class OnnxEngine:
    name = "onnxruntime"

    def __init__(self, settings: RuntimeSettings | None = None) -> None:
        self.settings = settings or RuntimeSettings()
        # blob id -> (session, output names), least recently used first
        self._sessions: OrderedDict[Digest, tuple[ort.InferenceSession, list[str]]] = OrderedDict()
        self._lock = threading.Lock()
        self._fingerprint = self._make_fingerprint()

    def _make_fingerprint(self) -> RuntimeFingerprint:
        settings = self.settings
        return RuntimeFingerprint(
            {
                "engine": self.name,
                "engine_version": ort.__version__,
                "provider": PROVIDER,
                "execution_mode": "sequential",
                "intra_op_threads": settings.intra_op_threads,
                "inter_op_threads": settings.inter_op_threads,
                "graph_optimization": settings.graph_optimization,
                "deterministic_compute": True,
                "machine": machine(),
                "cpu_features": list(cpu_features()),
            }
        )

    @property
    def fingerprint(self) -> RuntimeFingerprint:
        return self._fingerprint

    @property
    def runtime_class(self) -> str:
        return self._fingerprint.runtime_class

    def _session_options(self) -> ort.SessionOptions:
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.settings.intra_op_threads
        options.inter_op_num_threads = self.settings.inter_op_threads
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = _OPTIMIZATION[self.settings.graph_optimization]
        options.use_deterministic_compute = True
        options.log_severity_level = 3  # errors only: warnings would go to stderr of the CLI and node
        return options

    def holds(self, blob_id: Digest) -> bool:
        """Whether the blob's session is loaded: a run then parses, hashes and optimizes nothing first. Read without
        the lock, which a thread loading another session holds for as long as that takes (a dict lookup is atomic)."""
        return blob_id in self._sessions

    def session(self, blob_id: Digest, load: BlobLoader) -> tuple[ort.InferenceSession, list[str]]:
        """The cached session for a blob (loading it on a miss) and its output names."""
        with self._lock:
            entry = self._sessions.get(blob_id)
            if entry is not None:
                self._sessions.move_to_end(blob_id)
                return entry
            try:
                source = load()
                source = str(source) if isinstance(source, Path) else source
                session = ort.InferenceSession(source, self._session_options(), providers=[PROVIDER])
            except (
                ort.capi.onnxruntime_pybind11_state.Fail,
                ort.capi.onnxruntime_pybind11_state.InvalidGraph,
            ) as exc:
                raise InvalidInput(f"model {blob_id}: onnxruntime cannot load it: {str(exc).splitlines()[0]}") from exc
            entry = (session, [output.name for output in session.get_outputs()])
            self._sessions[blob_id] = entry
            while len(self._sessions) > self.settings.session_cache_size:
                self._sessions.popitem(last=False)
            return entry

    def run(
        self, blob_id: Digest, load: BlobLoader, inputs: Mapping[str, np.ndarray], time_limit: float | None = None
    ) -> dict[str, np.ndarray]:
        """Run a model on validated inputs and return its outputs by name; RunTooLong if the run is not done within
        `time_limit` seconds (default: the settings' max_run_seconds)."""
        session, names = self.session(blob_id, load)
        limit = self.settings.max_run_seconds if time_limit is None else time_limit
        with limited_run(limit) as options:
            try:
                values = session.run(names, dict(inputs), options)
            except (
                ort.capi.onnxruntime_pybind11_state.Fail,
                ort.capi.onnxruntime_pybind11_state.InvalidArgument,
            ) as exc:
                if options.terminate:
                    raise RunTooLong(f"model {blob_id}: the run did not end within {limit:g} s") from exc
                raise InvalidInput(f"model {blob_id}: inference failed: {str(exc).splitlines()[0]}") from exc
        return {name: np.asarray(value) for name, value in zip(names, values, strict=True)}
