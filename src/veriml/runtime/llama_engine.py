"""The llama.cpp engine (llama-cpp-python, the `llm` extra) for GGUF language models: token ids in, token ids
out, through the sampler in `generation`. Loaded models are cached per blob and context shape.

Its runtime class is the engine version and the instruction sets the library was compiled with: a build with a
fixed instruction set gives the same logits on every CPU that can run it, while a `-march=native` build does
not, and shows up here as another class.
"""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import os
import re
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from veriml.codec import Digest
from veriml.errors import InvalidInput, Unavailable
from veriml.runtime.fingerprint import RuntimeFingerprint, machine
from veriml.runtime.generation import (
    OUTPUT,
    GenerationParams,
    choose_token,
    split_inputs,
    top2_margin,
)

BlobLoader = Callable[[], "bytes | Path"]
TextSink = Callable[[str], None]
ENGINE = "llama.cpp"
_FLAG = re.compile(r"([A-Z0-9_]+) = 1")


def llama_module() -> Any:
    """llama_cpp, or Unavailable saying how to install it."""
    # llama.cpp's OpenMP threads spin while they wait; on a machine whose cores are busy (other nodes, other
    # generations) that made generation ten times slower here. Passive waiting costs little when cores are free.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import llama_cpp
    except ImportError as exc:
        raise Unavailable(
            "the llama.cpp engine is not installed: `make install` builds it (the `llm` extra, llama-cpp-python "
            "compiled with a fixed instruction set)"
        ) from exc
    return llama_cpp


def available() -> bool:
    try:
        llama_module()
    except Unavailable:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Generation:
    tokens: list[int]
    text: str
    finish_reason: str  # "stop" (end-of-generation token or a stop sequence) or "length"


@dataclass(frozen=True, slots=True)
class Replay:
    """A re-run checked step by step against claimed tokens."""

    agree: bool
    detail: str
    step: int | None = None  # the first step where the replay chose another token
    margin: float | None = None  # the top-2 logit margin at that step


class _Text:
    """Detokenized text as it grows: UTF-8 split across tokens is held until whole, and text that could be the
    start of a stop sequence is held until it is known not to be one."""

    def __init__(self, stop: Sequence[str]) -> None:
        self.stop = tuple(stop)
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.text = ""
        self.emitted = 0
        self.stopped = False

    def add(self, piece: bytes, final: bool = False) -> str:
        self.text += self._decoder.decode(piece, final=final)
        for sequence in self.stop:
            found = self.text.find(sequence)
            if found >= 0:
                self.text, self.stopped = self.text[:found], True
        hold = 0 if (final or self.stopped) else self._held()
        ready = self.text[self.emitted : len(self.text) - hold]
        self.emitted += len(ready)
        return ready

    def _held(self) -> int:
        longest = 0
        for sequence in self.stop:
            for size in range(min(len(sequence) - 1, len(self.text)), longest, -1):
                if self.text.endswith(sequence[:size]):
                    longest = size
                    break
        return longest


class _Loaded:
    def __init__(self, llm: Any, llama_cpp: Any) -> None:
        self.llm = llm
        self.lock = threading.Lock()
        self.n_vocab = llm.n_vocab()
        self._cpp = llama_cpp
        self._vocab = llm._model.vocab
        self._piece = ctypes.create_string_buffer(256)

    def is_eog(self, token: int) -> bool:
        return bool(self._cpp.llama_vocab_is_eog(self._vocab, token))

    def piece(self, token: int) -> bytes:
        size = self._cpp.llama_token_to_piece(self._vocab, token, self._piece, len(self._piece), 0, False)
        if size < 0:
            buffer = ctypes.create_string_buffer(-size)
            size = self._cpp.llama_token_to_piece(self._vocab, token, buffer, -size, 0, False)
            return buffer.raw[:size]
        return self._piece.raw[:size]

    def logits(self) -> np.ndarray:
        pointer = self._cpp.llama_get_logits_ith(self.llm._ctx.ctx, -1)
        return np.ctypeslib.as_array(pointer, shape=(self.n_vocab,))


class LlamaEngine:
    name = ENGINE

    def __init__(self, threads: int | None = None, cache_size: int = 2) -> None:
        self.threads = threads or max(1, min(4, os.cpu_count() or 1))
        self.cache_size = cache_size
        self._models: OrderedDict[tuple[Digest, int, int, int], _Loaded] = OrderedDict()
        # One lock for loading models and asking llama.cpp about its build: the two raced when a node's /v1/info
        # and its first generation came at once, and the process died in native code.
        self._lock = threading.RLock()
        self._fingerprint: RuntimeFingerprint | None = None

    @property
    def fingerprint(self) -> RuntimeFingerprint:
        with self._lock:
            return self._fingerprint or self._make_fingerprint()

    def _make_fingerprint(self) -> RuntimeFingerprint:
        if self._fingerprint is None:
            llama_cpp = llama_module()
            info = llama_cpp.llama_print_system_info().decode("utf-8", "replace")
            # What the library was compiled for (with GGML_NATIVE off these are the build flags, not the CPU's).
            flags = sorted(set(_FLAG.findall(info)))
            self._fingerprint = RuntimeFingerprint(
                {
                    "engine": ENGINE,
                    "engine_version": llama_cpp.__version__,
                    "provider": "cpu",
                    "build": "+".join(flags),
                    "machine": machine(),
                    "sampler": "veriml-sampler-v1",
                }
            )
        return self._fingerprint

    @property
    def runtime_class(self) -> str:
        return self.fingerprint.runtime_class

    # ---- models ------------------------------------------------------------------------------------------

    def model(self, blob_id: Digest, load: BlobLoader, params: GenerationParams) -> _Loaded:
        key = (blob_id, params.n_ctx, params.n_batch, params.n_ubatch)
        with self._lock:
            loaded = self._models.get(key)
            if loaded is not None:
                self._models.move_to_end(key)
                return loaded
            loaded = self._load(blob_id, load, params)
            self._models[key] = loaded
            while len(self._models) > self.cache_size:
                self._models.popitem(last=False)[1].llm.close()
            return loaded

    def _load(self, blob_id: Digest, load: BlobLoader, params: GenerationParams) -> _Loaded:
        llama_cpp = llama_module()
        self._make_fingerprint()  # before any model is loaded, under the same lock
        source = load()
        temporary = None
        if isinstance(source, bytes | bytearray):
            with tempfile.NamedTemporaryFile(prefix="veriml-gguf-", suffix=".gguf", delete=False) as handle:
                handle.write(source)
            temporary = source = Path(handle.name)
        try:
            llm = llama_cpp.Llama(
                model_path=str(source),
                n_ctx=params.n_ctx,
                n_batch=params.n_batch,
                n_ubatch=params.n_ubatch,
                n_threads=self.threads,
                n_threads_batch=self.threads,
                logits_all=False,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise InvalidInput(f"model {blob_id}: llama.cpp cannot load it: {exc}") from exc
        finally:
            if temporary is not None:
                with contextlib.suppress(OSError):
                    temporary.unlink()  # the mapping stays valid while the model is loaded
        return _Loaded(llm, llama_cpp)

    def tokenize(self, blob_id: Digest, load: BlobLoader, text: str, params: GenerationParams) -> list[int]:
        """Token ids of a rendered prompt; special tokens in the text (a chat template's markers) are parsed as
        special, and a BOS token is added only where the model's metadata asks for one."""
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError as exc:  # JSON can spell a lone surrogate; UTF-8 cannot
            raise InvalidInput(f"prompt: not Unicode text (a lone surrogate at character {exc.start})") from exc
        loaded = self.model(blob_id, load, params)
        with loaded.lock:
            add_bos = bool(loaded.llm.metadata.get("tokenizer.ggml.add_bos_token", "false") == "true")
            return list(loaded.llm.tokenize(data, add_bos=add_bos, special=True))

    def detokenize(self, blob_id: Digest, load: BlobLoader, tokens: Sequence[int], params: GenerationParams) -> str:
        loaded = self.model(blob_id, load, params)
        return b"".join(loaded.piece(t) for t in tokens).decode("utf-8", "replace")

    # ---- generation --------------------------------------------------------------------------------------

    def _check(self, loaded: _Loaded, prompt: Sequence[int], params: GenerationParams) -> None:
        if not prompt:
            raise InvalidInput("prompt: no tokens; a generation needs at least one prompt token")
        bad = next((t for t in prompt if not 0 <= t < loaded.n_vocab), None)
        if bad is not None:
            raise InvalidInput(f"prompt: token id {bad} is outside the vocabulary of {loaded.n_vocab}")
        if len(prompt) + params.max_tokens > params.n_ctx:
            raise InvalidInput(
                f"context length: the prompt has {len(prompt)} tokens and max_tokens is {params.max_tokens}, "
                f"{len(prompt) + params.max_tokens} in all, over the context of {params.n_ctx} tokens"
            )

    def generate(
        self,
        blob_id: Digest,
        load: BlobLoader,
        prompt: Sequence[int],
        params: GenerationParams,
        on_text: TextSink | None = None,
    ) -> Generation:
        """Decode up to max_tokens tokens after the prompt; `on_text` gets the text as it becomes final."""
        loaded = self.model(blob_id, load, params)
        self._check(loaded, prompt, params)
        text = _Text(params.stop)
        tokens: list[int] = []
        history = list(prompt)
        finish = "length"
        with loaded.lock:
            llm = loaded.llm
            llm.reset()  # no prefix reuse: every generation evaluates its prompt from an empty cache
            llm.eval(list(prompt))
            for step in range(params.max_tokens):
                token = choose_token(loaded.logits(), history, params, step)
                tokens.append(token)
                history.append(token)
                if loaded.is_eog(token):
                    finish = "stop"
                    break
                ready = text.add(loaded.piece(token))
                if ready and on_text is not None:
                    on_text(ready)
                if text.stopped:
                    finish = "stop"
                    break
                if step + 1 < params.max_tokens:
                    llm.eval([token])
        rest = text.add(b"", final=True)
        if rest and on_text is not None:
            on_text(rest)
        return Generation(tokens, text.text, finish)

    def run(self, blob_id: Digest, load: BlobLoader, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The engine interface shared with onnxruntime: generation inputs in, generated token ids out."""
        prompt, params = split_inputs(inputs)
        generation = self.generate(blob_id, load, prompt, params)
        return {OUTPUT: np.asarray(generation.tokens, dtype=np.int32)}

    def replay(
        self, blob_id: Digest, load: BlobLoader, inputs: Mapping[str, np.ndarray], claimed: Sequence[int]
    ) -> Replay:
        """Re-run a generation while feeding it the claimed tokens, and report the first step where this engine
        would have chosen another token, with the top-2 logit margin there."""
        prompt, params = split_inputs(inputs)
        loaded = self.model(blob_id, load, params)
        self._check(loaded, prompt, params)
        claimed = [int(t) for t in claimed]
        if len(claimed) > params.max_tokens:
            return Replay(False, f"{len(claimed)} tokens claimed, over max_tokens {params.max_tokens}", len(claimed))
        text = _Text(params.stop)
        history = list(prompt)
        with loaded.lock:
            llm = loaded.llm
            llm.reset()
            llm.eval(list(prompt))
            for step in range(params.max_tokens):
                logits = loaded.logits()
                mine = choose_token(logits, history, params, step)
                if step == len(claimed):
                    return Replay(False, f"the claimed output ends at step {step}, where the replay goes on with "
                                  f"token {mine}", step)  # fmt: skip
                if mine != claimed[step]:
                    first, second, margin = top2_margin(logits, history, params)
                    return Replay(
                        False,
                        f"diverges at step {step}: claimed token {claimed[step]}, replay chose {mine}; "
                        f"top-2 logit margin there {margin:.4g} (tokens {first} and {second})",
                        step,
                        margin,
                    )
                history.append(mine)
                text.add(loaded.piece(mine))
                if loaded.is_eog(mine) or text.stopped:
                    break
                if step + 1 < params.max_tokens:
                    llm.eval([mine])
        if len(claimed) > step + 1:
            return Replay(False, f"the replay stops at step {step}, the claimed output goes on", step + 1)
        return Replay(True, f"all {len(claimed)} generated tokens replayed exactly")
