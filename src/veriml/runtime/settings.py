"""The pinned runtime settings: everything that can change an engine's numbers is fixed here and recorded."""

from __future__ import annotations

from dataclasses import dataclass

from veriml.errors import InvalidInput

OPTIMIZATION_LEVELS = ("disabled", "basic", "extended", "all")


@dataclass(frozen=True, slots=True)
class RuntimeSettings:
    # One thread each: for small models it is also the fastest setting, and it leaves no room for
    # scheduling-dependent reduction orders.
    intra_op_threads: int = 1
    inter_op_threads: int = 1
    # "basic" does only constant folding and redundant-node removal, which are hardware-independent;
    # "extended"/"all" add fusions and layouts chosen by CPU features.
    graph_optimization: str = "basic"
    max_input_bytes: int = 64 << 20
    # Seconds a model run may take before it is stopped (run_limit.py): its work may depend on its inputs' values.
    max_run_seconds: float = 60.0
    session_cache_size: int = 8
    # llama.cpp threads (0: up to 4, by CPU count); results do not depend on it.
    llm_threads: int = 0
    # Generations decoded together per model and context shape; results do not depend on it (docs/llm.md).
    llm_max_sequences: int = 8

    def __post_init__(self) -> None:
        if self.graph_optimization not in OPTIMIZATION_LEVELS:
            raise InvalidInput(f"graph_optimization must be one of {OPTIMIZATION_LEVELS}")
        if min(self.intra_op_threads, self.inter_op_threads, self.session_cache_size, self.llm_max_sequences) < 1:
            raise InvalidInput("thread counts, the session cache size and llm_max_sequences must be at least 1")
        if self.max_input_bytes < 1:
            raise InvalidInput("max_input_bytes must be positive")
        if not self.max_run_seconds > 0:
            raise InvalidInput("max_run_seconds must be positive")
