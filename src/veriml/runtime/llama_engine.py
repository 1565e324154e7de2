"""The llama.cpp engine (llama-cpp-python, the `llm` extra) for GGUF language models: token ids in, token ids
out, through the sampler in `generation`. Concurrent generations for one model and context shape decode together
(continuous batching): a scheduler thread per shape owns a llama.cpp context with one KV stream per sequence,
admits requests as sequence slots free up, prefills each prompt alone (or, with `group_prefill`, the prompts that
join at once together, in rounds of equal chunks of two or more tokens per prompt), and then decodes one token of
every running sequence per `llama_decode`.

That layout is the one found bit-identical to decoding alone (docs/llm.md, "Batch invariance"): a separate KV
stream per sequence (`kv_unified = false`), prompts prefilled alone or together with no decode rows beside them,
each in chunks of two or more tokens after position 0 (one-token chunks took another attention path before
flash attention; with it they are exact, docs/llm.md), one token per sequence per decode batch, flash attention
over a bf16 KV cache (a cache type for which llama.cpp's CPU kernel computes every query row alone, whatever the
batch and the thread count), and weights kept as the GGUF stores them (no runtime repacking: repacked K-quant
kernels switch with the number of rows, so a batch changed Qwen2.5's logits). A lone request, a verifier's replay
included, goes through the same scheduler, so whatever else was running changes nothing. The kernel settings are
in the runtime fingerprint (`kernels`).

Its runtime class is the engine version and the instruction sets the library was compiled with: a build with a
fixed instruction set gives the same logits on every CPU that can run it, while a `-march=native` build does
not, and shows up here as another class.
"""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import heapq
import logging
import os
import re
import tempfile
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
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
DEFAULT_MAX_SEQUENCES = 8
# The settings of every context and model this engine makes that results depend on (recorded in receipts).
KERNELS = "flash-attn-on+kv-bf16+no-repack"
# The KV cache's type. With it, llama.cpp's CPU flash attention computes each query row alone, over its stream's
# cells in order: its two other paths (KV split across threads for a lone one-token row, tiles of query rows for
# prompts) take only f16 or f32 caches, and the first sums differently by thread count and makes a lone decode
# differ from a batched one past 256 cells. ggml.h's value: llama-cpp-python 0.3.36 names no constant for it.
GGML_TYPE_BF16 = 30
_LOAD_LOCK = threading.Lock()
events = logging.getLogger("veriml.runtime")
_FLAG = re.compile(r"([A-Z0-9_]+) = 1")


def set_openmp_waiting() -> None:
    """How llama.cpp's OpenMP threads wait, set before llama.cpp is loaded (unless the environment says): they meet
    at a barrier after each of the few hundred operations of a step. GOMP's default spins ~300,000 rounds there,
    which made generation ten times slower on busy cores (other nodes, other jobs); sleeping at once
    (`OMP_WAIT_POLICY=PASSIVE`) costs a wake-up per barrier. 300 rounds of spinning catch the other thread at most
    barriers when cores are free and give the core up soon when they are not. On 2 cores against sleeping at once:
    8 streams 105 -> 124 tokens/s and the first token 195 -> 155 ms; two engines at once, the same (docs/llm.md)."""
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", "300")


def llama_module() -> Any:
    """llama_cpp, or Unavailable saying how to install it."""
    set_openmp_waiting()
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


class Piece(str):
    """Text that became final during a generation, as `on_text` receives it, carrying the token ids generated
    since the previous piece (`tokens`): a stream can bind its text to token ids as it goes. Every generated
    token, an end-of-generation token included, is in exactly one piece, in order."""

    tokens: tuple[int, ...]

    def __new__(cls, text: str, tokens: Sequence[int]) -> Piece:
        piece = super().__new__(cls, text)
        piece.tokens = tuple(tokens)
        return piece


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


@contextlib.contextmanager
def _plain_weights(llama_cpp: Any) -> Iterator[None]:
    """Load a model without llama.cpp's extra buffer types (weights repacked at load for faster kernels): the
    repacked kernels' sums depend on how many rows a batch has. `Llama` takes no such argument, so its source of
    default model parameters is swapped while it loads (one load at a time)."""
    low_level = llama_cpp.llama_cpp
    default = low_level.llama_model_default_params

    def plain() -> Any:
        params = default()
        params.use_extra_bufts = False
        return params

    with _LOAD_LOCK:
        low_level.llama_model_default_params = plain
        try:
            yield
        finally:
            low_level.llama_model_default_params = default


class _Loaded:
    """One GGUF's weights and vocabulary: a llama-cpp-python `Llama` whose own (tiny) context is never decoded
    in; it tokenizes, and the batchers' contexts share its weights."""

    def __init__(self, llm: Any, llama_cpp: Any) -> None:
        self.llm = llm
        self.lock = threading.Lock()  # the tokenizer's
        self.n_vocab = llm.n_vocab()
        self._cpp = llama_cpp
        self._vocab = llm._model.vocab
        self._pieces: dict[int, bytes] = {}

    def is_eog(self, token: int) -> bool:
        return bool(self._cpp.llama_vocab_is_eog(self._vocab, token))

    def piece(self, token: int) -> bytes:
        cached = self._pieces.get(token)
        if cached is None:
            buffer = ctypes.create_string_buffer(256)
            size = self._cpp.llama_token_to_piece(self._vocab, token, buffer, len(buffer), 0, False)
            if size < 0:
                buffer = ctypes.create_string_buffer(-size)
                size = self._cpp.llama_token_to_piece(self._vocab, token, buffer, -size, 0, False)
            cached = self._pieces[token] = buffer.raw[:size]
        return cached


class _Task:
    """One request in a batcher: its prompt and parameters, and what it does with the logits of each step."""

    def __init__(self, prompt: Sequence[int], params: GenerationParams) -> None:
        self.prompt = list(prompt)
        self.params = params
        self.history = list(prompt)
        self.text = _Text(params.stop)
        self.future: Future[Any] = Future()
        self.step = 0
        self.seq = -1  # the KV stream it holds while it runs
        self.position = 0  # tokens in that stream
        self.next = -1  # the token to decode next

    def advance(self, logits: np.ndarray, loaded: _Loaded) -> bool:
        """Take this step's logits; True to go on (with `self.next` decoded), False when done (future set)."""
        raise NotImplementedError


class _Generate(_Task):
    def __init__(self, prompt: Sequence[int], params: GenerationParams, on_text: TextSink | None) -> None:
        super().__init__(prompt, params)
        self.on_text = on_text
        self.tokens: list[int] = []
        self.unsent: list[int] = []  # generated since the last piece went to on_text

    def advance(self, logits: np.ndarray, loaded: _Loaded) -> bool:
        token = choose_token(logits, self.history, self.params, self.step)
        self.tokens.append(token)
        self.history.append(token)
        self.unsent.append(token)
        end = loaded.is_eog(token)
        ready = "" if end else self.text.add(loaded.piece(token))
        reason = "stop" if end or self.text.stopped else None
        if reason is None and self.step + 1 >= self.params.max_tokens:
            reason = "length"
        if reason is not None:
            # The last piece carries the last tokens and the text held until now (an incomplete UTF-8 sequence
            # or the start of a stop sequence that never came), so that a stream's last chunk ends it.
            ready += self.text.add(b"", final=True)
        if ready or reason is not None:
            if self.on_text is not None:
                self.on_text(Piece(ready, self.unsent))
            self.unsent = []
        if reason is not None:
            self.future.set_result(Generation(self.tokens, self.text.text, reason))
            return False
        self.step += 1
        self.next = token
        return True


class _Replay(_Task):
    def __init__(self, prompt: Sequence[int], params: GenerationParams, claimed: Sequence[int]) -> None:
        super().__init__(prompt, params)
        self.claimed = list(claimed)

    def advance(self, logits: np.ndarray, loaded: _Loaded) -> bool:
        step, claimed = self.step, self.claimed
        mine = choose_token(logits, self.history, self.params, step)
        if step == len(claimed):
            return self._done(Replay(False, f"the claimed output ends at step {step}, where the replay goes on with "
                                     f"token {mine}", step))  # fmt: skip
        if mine != claimed[step]:
            first, second, margin = top2_margin(logits, self.history, self.params)
            return self._done(
                Replay(
                    False,
                    f"diverges at step {step}: claimed token {claimed[step]}, replay chose {mine}; "
                    f"top-2 logit margin there {margin:.4g} (tokens {first} and {second})",
                    step,
                    margin,
                )
            )
        self.history.append(mine)
        self.text.add(loaded.piece(mine))
        if loaded.is_eog(mine) or self.text.stopped or step + 1 >= self.params.max_tokens:
            if len(claimed) > step + 1:
                return self._done(Replay(False, f"the replay stops at step {step}, the claimed output goes on",
                                         step + 1))  # fmt: skip
            return self._done(Replay(True, f"all {len(claimed)} generated tokens replayed exactly"))
        self.step += 1
        self.next = mine
        return True

    def _done(self, replay: Replay) -> bool:
        self.future.set_result(replay)
        return False


class _Record(_Task):
    """Greedy decoding that keeps the float32 bytes of every step's logits (the batcher's own checks)."""

    def __init__(self, prompt: Sequence[int], params: GenerationParams) -> None:
        super().__init__(prompt, params)
        self.seen: list[bytes] = []

    def advance(self, logits: np.ndarray, loaded: _Loaded) -> bool:
        self.seen.append(logits.tobytes())
        if len(self.seen) == self.params.max_tokens:
            self.future.set_result(self.seen)
            return False
        self.next = int(np.argmax(logits))
        return True


class _Closed(Exception):
    pass


# Prompt chunks of fewer tokens than this, after position 0, change logits (a one-token chunk takes llama.cpp's
# one-row attention path); a whole prompt of one token is what a solo prefill does too.
_MIN_CHUNK = 2


def prefill_rounds(lengths: Sequence[int], capacity: int) -> list[list[tuple[int, int, int]]]:
    """How to prefill several prompts together, as rounds of one `llama_decode` each: a round lists, per member,
    the token range [start, end) of its prompt it evaluates. Every member of a round evaluates the same number of
    tokens, and a round holds at most `capacity` tokens, so that llama.cpp (which splits a batch over separate KV
    streams into equal parts per sequence, at most n_ubatch tokens in all) runs each round as one micro-batch
    with exactly these chunks. No member is ever given a chunk of fewer than two tokens after its position 0:
    members whose remainders cannot share a round of two or more tokens go on in smaller groups of equal
    remainders. Members are indexes into `lengths`."""
    done = [0] * len(lengths)
    active = [i for i, length in enumerate(lengths) if length > 0]
    rounds: list[list[tuple[int, int, int]]] = []
    while active:
        left = {i: lengths[i] - done[i] for i in active}
        size = min(min(left.values()), capacity // len(active))
        while size > 0 and any(0 < left[i] - size < _MIN_CHUNK for i in active):
            size -= 1
        if size < _MIN_CHUNK and any(left[i] != size for i in active):
            # No shared chunk works: the members with the shortest remainder finish together in this round.
            shortest = min(left.values())
            members = [i for i in active if left[i] == shortest][: max(1, capacity // max(shortest, 1))]
            rounds.append([(i, done[i], lengths[i]) for i in members])
            for i in members:
                done[i] = lengths[i]
        else:
            rounds.append([(i, done[i], done[i] + size) for i in active])
            for i in active:
                done[i] += size
        active = [i for i in active if done[i] < lengths[i]]
    return rounds


def small_step_threads(threads: int) -> int:
    """The threads for a llama.cpp step of one token (a lone sequence decoding; prompts and steps of more tokens use
    all `threads`), halved as llama-cpp-python's defaults halve them. A one-token step's work is too small to share:
    each of its several hundred thread barriers costs more than the second thread gives. On 2 cores, SmolLM2 alone:
    63 tokens/s on one thread against 37 on two; two sequences per step, with the short spin of
    `set_openmp_waiting`, 75-87 on two threads against 57-68 on one (docs/llm.md). Results do not depend on thread
    counts."""
    return max(1, threads // 2)


class _Batcher:
    """Continuous batching for one model and context shape: a scheduler thread owns a llama.cpp context with
    `max_sequences` KV streams of `n_ctx` tokens each. Between decode steps it admits waiting requests (each prompt
    prefilled alone in chunks of n_batch tokens that llama.cpp splits by n_ubatch, as a solo run does; with
    `group_prefill`, together by `prefill_rounds` when each fits one micro-batch), then decodes one token of
    every running sequence in one `llama_decode`; a finished sequence's stream is cleared and its slot reused.
    Both the decode batch size and grouped prefill are used only as far as a check at startup found them
    exact."""

    def __init__(self, loaded: _Loaded, llama_cpp: Any, shape: tuple[int, int, int], sequences: int,
                 threads: int, group_prefill: bool = False) -> None:  # fmt: skip
        n_ctx, n_batch, n_ubatch = shape
        self.loaded, self._cpp = loaded, llama_cpp
        self.n_ctx, self.n_batch, self.sequences = n_ctx, n_batch, sequences
        # The settings llama-cpp-python's `Llama` uses (rope, yarn, KV types...), with the batch layout on top.
        params = type(loaded.llm.context_params).from_buffer_copy(loaded.llm.context_params)
        params.n_ctx = n_ctx * sequences
        params.n_batch = max(n_batch, sequences)
        params.n_ubatch = n_ubatch
        params.n_seq_max = sequences
        # llama.cpp runs a batch of one token on n_threads, any larger one on n_threads_batch.
        params.n_threads, params.n_threads_batch = small_step_threads(threads), threads
        params.kv_unified = False  # one KV stream per sequence: attention over a stream sees only its own rows
        # Flash attention with a bf16 cache runs only its row-by-row kernel (see GGML_TYPE_BF16): exact in any batch,
        # and 8-18% faster here than attention without it (docs/llm.md, "Batch invariance").
        params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
        params.type_k = params.type_v = GGML_TYPE_BF16
        params.no_perf = True
        self._ctx = llama_cpp.llama_init_from_model(loaded.llm._model.model, params)
        if not self._ctx:
            raise Unavailable(f"llama.cpp could not make a context of {sequences} x {n_ctx} tokens")
        if llama_cpp.llama_n_ctx_seq(self._ctx) < n_ctx:
            llama_cpp.llama_free(self._ctx)
            raise Unavailable(f"llama.cpp gave sequences under {n_ctx} tokens of context")
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self._batch = llama_cpp.llama_batch_init(params.n_batch, 0, 1)
        # Prompts prefilled together: at most this many tokens per round (one micro-batch), prompts up to it long.
        self.capacity = min(n_batch, n_ubatch)
        self._cond = threading.Condition()
        self._waiting: deque[_Task] = deque()
        # A heap: the lowest free stream first. llama.cpp computes a step over the contiguous range of streams its
        # sequences sit in; reusing the stream freed last spread 8 sequences over 16 streams at a third the speed.
        self._free = list(range(sequences))
        self._running: list[_Task] = []
        self._closing = False
        self.decodes = 0  # llama_decode calls of decode steps, and the sequences in them (for the benchmark)
        self.decoded = 0
        self.prefills = 0  # llama_decode calls of prompts, and the prompts they finished
        self.prefilled = 0
        self.prefill_seconds = self.decode_seconds = self.busy_seconds = 0.0
        # Decode together only as many sequences as this model, on this build, was just seen to decode giving the
        # bytes each gets alone; past that, requests wait (the same answers, with less of batching's throughput).
        # Likewise prefill prompts together only if that was just seen to give each prompt its solo bytes.
        try:
            self.limit = self._invariant_limit() if sequences > 1 else 1
            self.grouped = group_prefill and self.limit > 1  # on while it is checked
            self.grouped = self.grouped and self._grouped_prefill_exact()
        except BaseException:
            llama_cpp.llama_batch_free(self._batch)
            llama_cpp.llama_free(self._ctx)
            raise
        if self.limit < sequences:
            events.warning(f"llama.cpp: batches over {self.limit} sequences change this model's logits; "
                           f"at most {self.limit} decode together")  # fmt: skip
        if group_prefill and self.limit > 1 and not self.grouped:
            events.warning("llama.cpp: prompts prefilled together change this model's logits; each is prefilled "
                           "alone")  # fmt: skip
        self._free = list(range(self.limit))
        self.decodes = self.decoded = self.prefills = self.prefilled = 0
        # Seconds in llama_decode for prompts and for decode steps, and in the scheduler's loop in all while it
        # had work (the rest is Python: sampling, detokenizing, sinks, admission). For the benchmark.
        self.prefill_seconds = self.decode_seconds = self.busy_seconds = 0.0
        self._thread = threading.Thread(target=self._run, name=f"veriml-llm-batcher-{n_ctx}", daemon=True)
        self._thread.start()

    def _invariant_limit(self) -> int:
        """The most sequences that decode together giving, bit for bit, the logits each gets decoded alone: for
        every batch size from 2 up, sequences with prompts of 1 to 4 tokens decode 3 steps together and alone,
        compared over the float32 bytes of every logit; the first size that differs ends the count. Kernels
        switch with the number of rows on some models and builds (Qwen2.5 Q4_K_M here, past 4), never below."""
        prompts = [[(1 + 7919 * (n + 1) * (k + 1)) % self.loaded.n_vocab for k in range(1 + n % 4)]
                   for n in range(self.sequences)]  # fmt: skip

        def run(members: range) -> list[list[bytes]]:
            seen: list[list[bytes]] = [[] for _ in members]
            following = []
            for index, n in enumerate(members):  # each prompt prefilled alone, as `_start` does
                self._fill([(t, k, n, k == len(prompts[n]) - 1) for k, t in enumerate(prompts[n])])
                if self._cpp.llama_decode(self._ctx, self._batch) != 0:
                    raise Unavailable("llama.cpp could not evaluate a prompt")
                seen[index].append(self._logits(-1).tobytes())
                following.append(int(np.argmax(self._logits(-1))))
            for step in range(2):
                self._fill([(following[i], len(prompts[n]) + step, n, True) for i, n in enumerate(members)])
                if self._cpp.llama_decode(self._ctx, self._batch) != 0:
                    raise Unavailable("llama.cpp could not decode a step")
                for index in range(len(members)):
                    logits = self._logits(index)
                    seen[index].append(logits.tobytes())
                    following[index] = int(np.argmax(logits))
            self._cpp.llama_memory_clear(self._memory, True)
            return seen

        alone = [run(range(n, n + 1))[0] for n in range(self.sequences)]
        limit = 1
        for size in range(2, self.sequences + 1):
            if run(range(size)) != alone[:size]:
                break
            limit = size
        return limit

    def _grouped_prefill_exact(self) -> bool:
        """Whether prompts prefilled together (`_prefill`'s rounds) give each the float32 bytes of every logit it
        gets prefilled alone, at its last prompt token and over two decode steps after it: prompts of equal and of
        different lengths, one-token ones, and some that share only chunks of their prompts."""
        size = min(self.limit, 6)
        lengths = [min(length, self.capacity) for length in ([1, 2, 5, 5, 9, 12][:size] if size > 2 else [5, 7])]
        prompts = [[(3 + 7919 * (n + 2) * (k + 3)) % self.loaded.n_vocab for k in range(length)]
                   for n, length in enumerate(lengths)]  # fmt: skip
        params = GenerationParams(max_tokens=3, n_ctx=self.n_ctx)

        def run(together: bool) -> list[list[bytes]]:
            tasks = [_Record(prompt, params) for prompt in prompts]
            for n, task in enumerate(tasks):
                task.seq = n
            if together:
                self._prefill(tasks)
            else:
                for task in tasks:
                    self._prefill([task])
            while self._running:
                self._step()
            errors = [task.future.exception() for task in tasks if task.future.exception() is not None]
            if errors:
                raise errors[0]
            self._cpp.llama_memory_clear(self._memory, True)
            return [task.future.result() for task in tasks]

        return run(True) == run(False)

    def submit(self, task: _Task) -> Future[Any]:
        with self._cond:
            if self._closing:
                raise _Closed
            self._waiting.append(task)
            self._cond.notify()
        return task.future

    def close(self) -> None:
        """Finish what was admitted or is waiting, then free the context."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join()
        self._cpp.llama_batch_free(self._batch)
        self._cpp.llama_free(self._ctx)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not (self._waiting or self._running or self._closing):
                    self._cond.wait()
                if self._closing and not self._waiting and not self._running:
                    return
                joining = []
                while self._waiting and self._free:
                    task = self._waiting.popleft()
                    task.seq = heapq.heappop(self._free)
                    joining.append(task)
            start = time.perf_counter()
            if joining:
                self._prefill(joining)
            if self._running:
                try:
                    self._step()
                except BaseException as exc:  # the scheduler must outlive a bad step, or every request would hang
                    events.exception("llama.cpp: a decode step failed")
                    for task in self._running:
                        self._fail(task, exc)
                    self._running = []
            self.busy_seconds += time.perf_counter() - start

    def _fill(self, entries: Sequence[tuple[int, int, int, bool]]) -> None:
        batch = self._batch
        batch.n_tokens = len(entries)
        for i, (token, position, seq, logits) in enumerate(entries):
            batch.token[i] = token
            batch.pos[i] = position
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seq
            batch.logits[i] = logits

    def _logits(self, index: int) -> np.ndarray:
        pointer = self._cpp.llama_get_logits_ith(self._ctx, index)
        return np.ctypeslib.as_array(pointer, shape=(self.loaded.n_vocab,))

    def _prefill(self, tasks: Sequence[_Task]) -> None:
        """Prefill the prompts of requests joining: together, by `prefill_rounds`, where the startup check found
        that exact and a prompt fits one round; alone otherwise, as `Llama.eval` does (chunks of n_batch tokens).
        Each request then takes its first step from the logits of its last prompt token."""
        together = [t for t in tasks if len(t.prompt) <= self.capacity] if self.grouped and len(tasks) > 1 else []
        if len(together) < 2:
            together = []
        for task in tasks:
            if not together or task not in together:
                self._prefill_alone(task)
        if not together:
            return
        try:
            for members in prefill_rounds([len(t.prompt) for t in together], self.capacity):
                entries, last = [], []
                for i, start, end in members:
                    task = together[i]
                    entries += [(task.prompt[k], k, task.seq, k == len(task.prompt) - 1) for k in range(start, end)]
                    if end == len(task.prompt):
                        last.append((task, len(entries) - 1))
                self._fill(entries)
                status = self._decode("prefill_seconds")
                self.prefills += 1
                if status != 0:
                    raise Unavailable(f"llama.cpp could not evaluate the prompts (llama_decode returned {status})")
                self.prefilled += len(last)
                for task, index in last:
                    task.position = len(task.prompt)
                    self._first(task, self._logits(index))
        except BaseException as exc:  # these requests fail, the batcher goes on
            for task in together:
                if task.position == 0:
                    self._fail(task, exc)

    def _prefill_alone(self, task: _Task) -> None:
        try:
            prompt = task.prompt
            for start in range(0, len(prompt), self.n_batch):
                chunk = prompt[start : start + self.n_batch]
                self._fill([(t, start + i, task.seq, i == len(chunk) - 1) for i, t in enumerate(chunk)])
                status = self._decode("prefill_seconds")
                self.prefills += 1
                if status != 0:
                    raise Unavailable(f"llama.cpp could not evaluate the prompt (llama_decode returned {status})")
            self.prefilled += 1
            task.position = len(prompt)
        except BaseException as exc:  # the request fails, the batcher goes on
            self._fail(task, exc)
            return
        self._first(task, self._logits(-1))

    def _first(self, task: _Task, logits: np.ndarray) -> None:
        try:
            going = task.advance(logits, self.loaded)
        except BaseException as exc:
            self._fail(task, exc)
            return
        if going:
            self._running.append(task)
        else:
            self._release(task)

    def _decode(self, clock: str) -> int:
        start = time.perf_counter()
        status = int(self._cpp.llama_decode(self._ctx, self._batch))
        setattr(self, clock, getattr(self, clock) + time.perf_counter() - start)
        return status

    def _step(self) -> None:
        running = self._running
        self._fill([(task.next, task.position, task.seq, True) for task in running])
        status = self._decode("decode_seconds")
        self.decodes += 1
        self.decoded += len(running)
        if status != 0:
            error = Unavailable(f"llama.cpp could not decode a step (llama_decode returned {status})")
            for task in running:
                self._fail(task, error)
            self._running = []
            return
        still = []
        for index, task in enumerate(running):
            task.position += 1
            try:
                going = task.advance(self._logits(index), self.loaded)
            except BaseException as exc:  # a sink that raised fails its own request only
                self._fail(task, exc)
                continue
            if going:
                still.append(task)
            else:
                self._release(task)
        self._running = still

    def _fail(self, task: _Task, exc: BaseException) -> None:
        if not task.future.done():
            task.future.set_exception(exc)
        self._release(task)

    def _release(self, task: _Task) -> None:
        if task.seq < 0:  # released already
            return
        self._cpp.llama_memory_seq_rm(self._memory, task.seq, -1, -1)
        with self._cond:
            heapq.heappush(self._free, task.seq)
        task.seq = -1


class LlamaEngine:
    name = ENGINE

    def __init__(
        self,
        threads: int | None = None,
        cache_size: int = 2,
        max_sequences: int = DEFAULT_MAX_SEQUENCES,
        group_prefill: bool = False,
    ) -> None:
        if max_sequences < 1:
            raise InvalidInput(f"max_sequences: must be at least 1, got {max_sequences}")
        self.threads = threads or max(1, min(4, os.cpu_count() or 1))
        self.cache_size = cache_size
        self.max_sequences = max_sequences
        # Prompts joining at once prefilled together (exact, checked at startup) instead of one after another.
        # Off by default: on 2 cores with SmolLM2 it was no faster (prefill is compute-bound at ~285 tokens/s
        # whatever the batch), and slower where rounds span streams that are not consecutive (llama.cpp then
        # splits a round into one micro-batch per stream run). See docs/llm.md.
        self.group_prefill = group_prefill
        self._models: OrderedDict[Digest, _Loaded] = OrderedDict()
        self._batchers: OrderedDict[tuple[Digest, int, int, int], _Batcher] = OrderedDict()
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
                    "kernels": KERNELS,
                }
            )
        return self._fingerprint

    @property
    def runtime_class(self) -> str:
        return self.fingerprint.runtime_class

    # ---- models ------------------------------------------------------------------------------------------

    def model(self, blob_id: Digest, load: BlobLoader, params: GenerationParams | None = None) -> _Loaded:
        with self._lock:
            loaded = self._models.get(blob_id)
            if loaded is not None:
                self._models.move_to_end(blob_id)
                return loaded
            loaded = self._models[blob_id] = self._load(blob_id, load)
            while len(self._models) > self.cache_size:
                evicted, old = self._models.popitem(last=False)
                for key in [key for key in self._batchers if key[0] == evicted]:
                    self._batchers.pop(key).close()
                old.llm.close()
            return loaded

    def _batcher(self, blob_id: Digest, load: BlobLoader, params: GenerationParams) -> _Batcher:
        key = (blob_id, params.n_ctx, params.n_batch, params.n_ubatch)
        with self._lock:
            loaded = self.model(blob_id, load)
            batcher = self._batchers.get(key)
            if batcher is not None:
                self._batchers.move_to_end(key)
                return batcher
            batcher = self._batchers[key] = _Batcher(loaded, llama_module(), key[1:], self.max_sequences,
                                                     self.threads, self.group_prefill)  # fmt: skip
            while len(self._batchers) > self.cache_size:
                self._batchers.popitem(last=False)[1].close()  # finishes its requests first
            return batcher

    def _submit(self, blob_id: Digest, load: BlobLoader, params: GenerationParams, task: _Task) -> Any:
        while True:
            try:
                future = self._batcher(blob_id, load, params).submit(task)
            except _Closed:  # evicted between lookup and submit: the next lookup makes another
                continue
            return future.result()

    def close(self) -> None:
        with self._lock:
            while self._batchers:
                self._batchers.popitem()[1].close()
            while self._models:
                self._models.popitem()[1].llm.close()

    def _load(self, blob_id: Digest, load: BlobLoader) -> _Loaded:
        llama_cpp = llama_module()
        self._make_fingerprint()  # before any model is loaded, under the same lock
        source = load()
        temporary = None
        if isinstance(source, bytes | bytearray):
            with tempfile.NamedTemporaryFile(prefix="veriml-gguf-", suffix=".gguf", delete=False) as handle:
                handle.write(source)
            temporary = source = Path(handle.name)
        try:
            # Its own context only backs tokenizing; generations run in the batchers' contexts.
            with _plain_weights(llama_cpp):
                llm = llama_cpp.Llama(
                    model_path=str(source),
                    n_ctx=64,
                    n_batch=64,
                    n_ubatch=64,
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
        loaded = self.model(blob_id, load)
        with loaded.lock:
            add_bos = bool(loaded.llm.metadata.get("tokenizer.ggml.add_bos_token", "false") == "true")
            return list(loaded.llm.tokenize(data, add_bos=add_bos, special=True))

    def detokenize(self, blob_id: Digest, load: BlobLoader, tokens: Sequence[int], params: GenerationParams) -> str:
        loaded = self.model(blob_id, load)
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
        """Decode up to max_tokens tokens after the prompt, batched with whatever else runs on this model and
        shape; `on_text` gets the text as it becomes final, as `Piece`s carrying their token ids (it is called
        on the scheduler's thread: it must not block)."""
        loaded = self.model(blob_id, load)
        self._check(loaded, prompt, params)
        result: Generation = self._submit(blob_id, load, params, _Generate(prompt, params, on_text))
        return result

    def run(
        self, blob_id: Digest, load: BlobLoader, inputs: Mapping[str, np.ndarray], time_limit: float | None = None
    ) -> dict[str, np.ndarray]:
        """The engine interface shared with onnxruntime: generation inputs in, generated token ids out. A
        generation's work is bounded by its token limits, not by `time_limit`."""
        prompt, params = split_inputs(inputs)
        generation = self.generate(blob_id, load, prompt, params)
        return {OUTPUT: np.asarray(generation.tokens, dtype=np.int32)}

    def replay(
        self, blob_id: Digest, load: BlobLoader, inputs: Mapping[str, np.ndarray], claimed: Sequence[int]
    ) -> Replay:
        """Re-run a generation while feeding it the claimed tokens, and report the first step where this engine
        would have chosen another token, with the top-2 logit margin there."""
        prompt, params = split_inputs(inputs)
        loaded = self.model(blob_id, load)
        self._check(loaded, prompt, params)
        claimed = [int(t) for t in claimed]
        if len(claimed) > params.max_tokens:
            return Replay(False, f"{len(claimed)} tokens claimed, over max_tokens {params.max_tokens}", len(claimed))
        result: Replay = self._submit(blob_id, load, params, _Replay(prompt, params, claimed))
        return result
