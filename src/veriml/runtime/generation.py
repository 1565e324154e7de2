"""Text generation as tensors in, tensors out: the prompt's token ids and every parameter that can change the
output travel as named tensors, and the generated token ids come back as one. A receipt's input digest is the
digest of these tensors, so it covers the prompt and the parameters together: two runs with the same manifest,
input digest and runtime class must produce the same tokens.

The sampler is written here, in plain numpy, so that what it does is fixed by this file and the seed in the
receipt, not by an engine's defaults: greedy decoding is an argmax; sampling draws its uniform numbers from
SHA-256 of the seed and the step.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from veriml.codec import TensorSpec
from veriml.errors import InvalidInput, shown

PROMPT = "prompt_tokens"
OUTPUT = "tokens"
REPEAT_WINDOW = 64  # the repeat penalty looks at this many most recent tokens, as llama.cpp's default does
MAX_STOP = 4  # OpenAI's limit on stop sequences
MAX_STOP_CHARS = 256
MAX_SEED = 2**32 - 1

_INT = ("max_tokens", "top_k", "seed", "n_ctx", "n_batch", "n_ubatch")
_FLOAT = ("temperature", "top_p", "min_p", "repeat_penalty")

GENERATION_INPUTS: tuple[TensorSpec, ...] = (
    TensorSpec(PROMPT, "int32", ("prompt_length",)),
    TensorSpec("stop", "uint8", ("stop_bytes",)),
    *(TensorSpec(name, "int64", ()) for name in _INT),
    *(TensorSpec(name, "float64", ()) for name in _FLOAT),
)
GENERATION_OUTPUTS: tuple[TensorSpec, ...] = (TensorSpec(OUTPUT, "int32", ("generated_length",)),)


@dataclass(frozen=True, slots=True)
class GenerationParams:
    """Everything besides the prompt that can change which tokens come out. Defaults decode greedily."""

    max_tokens: int = 64
    stop: tuple[str, ...] = ()
    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    min_p: float = 0.0
    repeat_penalty: float = 1.0
    seed: int = 0
    n_ctx: int = 2048
    n_batch: int = 512
    n_ubatch: int = 512

    def __post_init__(self) -> None:
        for name in _INT:
            value = getattr(self, name)
            if type(value) is not int:
                raise InvalidInput(f"{name}: expected an integer, got {shown(value)}")
        for name in _FLOAT:
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
                raise InvalidInput(f"{name}: expected a finite number, got {shown(value)}")
            object.__setattr__(self, name, float(value))
        _check_range("max_tokens", self.max_tokens, 1, 1 << 20)
        _check_range("temperature", self.temperature, 0.0, 2.0)
        _check_range("top_k", self.top_k, 0, 1 << 20)
        if not 0.0 < self.top_p <= 1.0:
            raise InvalidInput(f"top_p: must be in (0, 1], got {self.top_p}")
        _check_range("min_p", self.min_p, 0.0, 1.0)
        if not 0.0 < self.repeat_penalty <= 10.0:
            raise InvalidInput(f"repeat_penalty: must be in (0, 10], got {self.repeat_penalty}")
        _check_range("seed", self.seed, 0, MAX_SEED)
        _check_range("n_ctx", self.n_ctx, 16, 1 << 20)
        # n_batch = n_ubatch = 1 takes another kernel path in llama.cpp and changes the logits; refuse it
        # rather than let results depend on a setting nobody thinks of as numeric.
        _check_range("n_batch", self.n_batch, 2, 1 << 16)
        _check_range("n_ubatch", self.n_ubatch, 2, self.n_batch)
        if not isinstance(self.stop, tuple) or not all(isinstance(s, str) for s in self.stop):
            raise InvalidInput("stop: expected a list of strings")
        if len(self.stop) > MAX_STOP:
            raise InvalidInput(f"stop: at most {MAX_STOP} sequences, got {len(self.stop)}")
        for sequence in self.stop:
            if not sequence or len(sequence) > MAX_STOP_CHARS:
                raise InvalidInput(
                    f"stop: each sequence must be 1 to {MAX_STOP_CHARS} characters, got {sequence!r:.40}"
                )
            try:
                sequence.encode("utf-8")
            except UnicodeEncodeError as exc:  # JSON can spell a lone surrogate; UTF-8 cannot
                raise InvalidInput(f"stop: not Unicode text (a lone surrogate at character {exc.start})") from exc

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def to_json(self) -> dict[str, Any]:
        return {f.name: (list(self.stop) if f.name == "stop" else getattr(self, f.name)) for f in fields(self)}

    def to_tensors(self) -> dict[str, np.ndarray]:
        stop = json.dumps(list(self.stop), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        tensors = {"stop": np.frombuffer(stop, dtype=np.uint8).copy()}
        tensors.update({name: np.array(getattr(self, name), dtype=np.int64) for name in _INT})
        tensors.update({name: np.array(getattr(self, name), dtype=np.float64) for name in _FLOAT})
        return tensors

    @classmethod
    def from_tensors(cls, tensors: Mapping[str, np.ndarray]) -> GenerationParams:
        try:
            stop = json.loads(bytes(np.asarray(tensors["stop"], dtype=np.uint8)).decode("utf-8"))
            values: dict[str, Any] = {name: int(tensors[name]) for name in _INT}
            values.update({name: float(tensors[name]) for name in _FLOAT})
        except KeyError as exc:
            raise InvalidInput(f"generation inputs: missing {exc.args[0]!r}") from exc
        except (ValueError, TypeError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"generation inputs: malformed ({exc})") from exc
        if not isinstance(stop, list):
            raise InvalidInput("generation inputs: stop must hold a JSON list of strings")
        return cls(stop=tuple(stop), **values)


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise InvalidInput(f"{name}: must be from {low} to {high}, got {value}")


def generation_inputs(prompt_tokens: Sequence[int], params: GenerationParams) -> dict[str, np.ndarray]:
    """The input tensors a receipt's input digest covers: the prompt's token ids and every parameter."""
    return {PROMPT: np.asarray(prompt_tokens, dtype=np.int32), **params.to_tensors()}


def split_inputs(inputs: Mapping[str, np.ndarray]) -> tuple[list[int], GenerationParams]:
    if PROMPT not in inputs:
        raise InvalidInput(f"generation inputs: missing {PROMPT!r}")
    prompt = np.asarray(inputs[PROMPT])
    if prompt.dtype != np.int32 or prompt.ndim != 1:
        raise InvalidInput(f"{PROMPT}: expected int32[n]")
    return prompt.tolist(), GenerationParams.from_tensors(inputs)


def uniform(seed: int, step: int) -> float:
    """A uniform number in [0, 1) for step `step` of a generation seeded with `seed`: 53 bits of SHA-256, the
    same on every platform and numpy version."""
    digest = hashlib.sha256(b"veriml-sampler-v1" + seed.to_bytes(8, "little") + step.to_bytes(8, "little")).digest()
    return (int.from_bytes(digest[:8], "little") >> 11) / float(1 << 53)


def penalized(logits: np.ndarray, history: Sequence[int], penalty: float) -> np.ndarray:
    """llama.cpp's repeat penalty over the last REPEAT_WINDOW tokens: positive logits divided, negative ones
    multiplied, once per distinct token."""
    scores = np.array(logits, dtype=np.float64)
    if penalty != 1.0 and history:
        recent = np.unique(np.asarray(history[-REPEAT_WINDOW:], dtype=np.int64))
        recent = recent[(recent >= 0) & (recent < scores.size)]
        values = scores[recent]
        scores[recent] = np.where(values > 0, values / penalty, values * penalty)
    return scores


def choose_token(logits: np.ndarray, history: Sequence[int], params: GenerationParams, step: int) -> int:
    """The next token: argmax when greedy (ties to the lowest id); otherwise top-k, temperature, min-p and top-p
    filtering, then a draw with `uniform(seed, step)` over the kept tokens in id order."""
    scores = penalized(logits, history, params.repeat_penalty)
    if params.greedy:
        return int(np.argmax(scores))
    ids = np.arange(scores.size)
    if 0 < params.top_k < scores.size:
        # Every token tied with the k-th best is kept, so the result never depends on how ties are broken.
        threshold = np.partition(scores, scores.size - params.top_k)[scores.size - params.top_k]
        keep = scores >= threshold
        ids, scores = ids[keep], scores[keep]
    scaled = (scores - scores.max()) / params.temperature
    probs = np.exp(scaled)
    probs /= probs.sum()
    if params.min_p > 0.0:
        keep = probs >= params.min_p * probs.max()
        ids, probs = ids[keep], probs[keep]
    if params.top_p < 1.0:
        order = np.lexsort((ids, -probs))
        cumulative = np.cumsum(probs[order])
        cut = int(np.searchsorted(cumulative, params.top_p * cumulative[-1])) + 1
        kept = np.sort(order[:cut])
        ids, probs = ids[kept], probs[kept]
    cdf = np.cumsum(probs)
    index = int(np.searchsorted(cdf, uniform(params.seed, step) * cdf[-1], side="right"))
    return int(ids[min(index, ids.size - 1)])


def top2_margin(logits: np.ndarray, history: Sequence[int], params: GenerationParams) -> tuple[int, int, float]:
    """The two best tokens after the repeat penalty and how far apart their logits are: a small margin at a
    divergence means the runs differ by rounding, a large one that the tokens were not this model's."""
    scores = penalized(logits, history, params.repeat_penalty)
    second, first = np.argpartition(scores, scores.size - 2)[-2:]
    if scores[second] > scores[first] or (scores[second] == scores[first] and second < first):
        first, second = second, first
    return int(first), int(second), float(scores[first] - scores[second])
