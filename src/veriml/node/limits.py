"""Cost bounds on work the node does for callers it does not know: a generation's size (for its own OpenAI routes
and for re-executing another node's receipt alike) and how many re-executions run at once. docs/limits.md lists
every endpoint's bound."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import numpy as np

from veriml.errors import InvalidInput, Unavailable
from veriml.hub import SignedManifest
from veriml.node.config import NodeConfig
from veriml.runtime import GenerationParams
from veriml.runtime.generation import PROMPT, split_inputs


def check_generation(config: NodeConfig, manifest: SignedManifest, params: GenerationParams) -> None:
    """A generation within this node's limits: max_tokens, n_ctx and n_batch at most the configured ones (and
    n_ctx at most the model's context length). Checked before any model is loaded."""
    if params.max_tokens > config.llm_max_tokens:
        raise InvalidInput(f"max_tokens: {params.max_tokens} is over this node's limit of {config.llm_max_tokens}")
    if params.n_ctx > config.llm_n_ctx:
        raise InvalidInput(f"n_ctx: {params.n_ctx} is over this node's limit of {config.llm_n_ctx}")
    if params.n_batch > config.llm_n_batch:
        raise InvalidInput(f"n_batch: {params.n_batch} is over this node's limit of {config.llm_n_batch}")
    llm = manifest.body.llm
    if llm is not None and params.n_ctx > llm.context_length:
        raise InvalidInput(
            f"n_ctx: {params.n_ctx} is over the context length of {manifest.body.ref}, {llm.context_length}"
        )


def check_reexecution(config: NodeConfig, manifest: SignedManifest, inputs: Mapping[str, np.ndarray]) -> None:
    """What re-executing a receipt would cost, bounded as the node bounds its own requests: a generation by the
    limits above (a receipt's parameters are whatever its signer chose), tensors by max_input_bytes."""
    total = sum(int(array.nbytes) for array in inputs.values())
    if total > config.max_input_bytes:
        raise InvalidInput(f"inputs: {total} bytes exceed this node's limit of {config.max_input_bytes} bytes")
    if manifest.body.format == "gguf":
        prompt, params = split_inputs(inputs)
        check_generation(config, manifest, params)
        if len(prompt) + params.max_tokens > params.n_ctx:
            raise InvalidInput(
                f"{PROMPT}: {len(prompt)} tokens and max_tokens {params.max_tokens} do not fit n_ctx {params.n_ctx}"
            )


class ConcurrencyCap:
    """At most `limit` holders at once; one more is refused at once (503) rather than queued, so callers cannot
    pile work up behind the cap."""

    def __init__(self, limit: int, what: str) -> None:
        self.limit, self.what = limit, what
        self._held = 0
        self._lock = threading.Lock()

    @contextmanager
    def hold(self) -> Iterator[None]:
        with self._lock:
            if self._held >= self.limit:
                raise Unavailable(f"{self.what}: {self._held} already running, at most {self.limit}; retry shortly")
            self._held += 1
        try:
            yield
        finally:
            with self._lock:
                self._held -= 1
