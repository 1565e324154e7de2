"""Batch invariance of the llama.cpp engine (SmolLM2-135M-Instruct): what a request generates while it decodes
together with others, joining and leaving at random, is bit for bit what it generates alone, and what a
verifier's solo re-execution replays. Generations are short; the hypothesis runs are bounded."""

from __future__ import annotations

import hashlib
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from veriml import examples
from veriml.codec import Digest
from veriml.identity import SigningKey
from veriml.runtime import GenerationParams, LlamaEngine, generation_inputs, llama_engine
from veriml.runtime.generation import choose_token
from veriml.service import Home, Service
from veriml.verify import verify_bundle

llama_cpp = pytest.importorskip("llama_cpp", reason="the llm extra is installed by `make install`")
MODEL = examples.smollm2_path()
if MODEL is None:
    pytest.skip("SmolLM2 GGUF not found: `make install` fetches it", allow_module_level=True)

BLOB = Digest("sha256", hashlib.sha256(b"smollm2 under test").digest())
VOCAB = 49152
# Prompt lengths: a single token, short ones, and one past 256 tokens, where flash attention stops being invariant.
LENGTHS = (1, 2, 7, 40, 270)


def load() -> Path:
    assert MODEL is not None
    return Path(MODEL)


@pytest.fixture(scope="module")
def batched():
    engine = LlamaEngine(threads=2, max_sequences=4)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def grouping():
    engine = LlamaEngine(threads=2, max_sequences=4, group_prefill=True)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def solo():
    engine = LlamaEngine(threads=2, max_sequences=1)  # what a verifier runs: one sequence, nothing beside it
    yield engine
    engine.close()


def prompt_of(length: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return [1] + [rng.randrange(100, VOCAB) for _ in range(length - 1)]


class _LogitRecorder(llama_engine._Task):
    """Greedy decoding that keeps a digest of the float32 bytes of every step's logits."""

    def __init__(self, prompt: list[int], params: GenerationParams) -> None:
        super().__init__(prompt, params)
        self.digests: list[str] = []

    def advance(self, logits: np.ndarray, loaded: object) -> bool:
        self.digests.append(hashlib.sha256(np.ascontiguousarray(logits).tobytes()).hexdigest())
        self.next = choose_token(logits, self.history, self.params, self.step)
        self.history.append(self.next)
        self.step += 1
        if self.step == self.params.max_tokens:
            self.future.set_result(self.digests)
            return False
        return True


@pytest.fixture(scope="module")
def reference():
    """llama-cpp-python's own high-level path, one sequence in its own context: the reference, not veriml code.
    Three threads for every step, where the engines use one (a lone sequence's step) or two: thread counts must
    not change results, as a verifier's machine has its own."""
    llm = llama_cpp.Llama(model_path=str(MODEL), n_ctx=512, n_batch=512, n_ubatch=512, n_threads=3,
                          n_threads_batch=3, flash_attn=True, type_k=llama_engine.GGML_TYPE_BF16,
                          type_v=llama_engine.GGML_TYPE_BF16, verbose=False)  # fmt: skip
    yield llm
    llm.close()


def _reference_logits(llm, prompt: list[int], params: GenerationParams) -> list[str]:
    llm.reset()
    llm.eval(prompt)
    history, digests = list(prompt), []
    for step in range(params.max_tokens):
        pointer = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
        logits = np.ctypeslib.as_array(pointer, shape=(llm.n_vocab(),))
        digests.append(hashlib.sha256(logits.tobytes()).hexdigest())
        token = choose_token(logits, history, params, step)
        history.append(token)
        if step + 1 < params.max_tokens:
            llm.eval([token])
    return digests


def test_logits_are_bit_identical_batched_and_alone(batched, reference):
    """The probe of FACTS.md, reproduced: the float32 bytes of every logit at every step, for sequences that join
    a running batch at different times and leave at different steps, equal those of each sequence decoded alone
    by llama-cpp-python's high-level API."""
    params = GenerationParams(max_tokens=6, n_ctx=512)
    jobs = [(prompt_of(length, n), replace(params, max_tokens=3 + n)) for n, length in enumerate((270, 1, 17, 2, 40))]
    batcher = batched._batcher(BLOB, load, params)
    assert batcher.limit == 4  # its own check found every batch size up to its streams invariant on SmolLM2
    before = batcher.decodes, batcher.decoded
    futures = []
    for prompt, job_params in jobs:
        futures.append(batcher.submit(_LogitRecorder(prompt, job_params)))
        time.sleep(0.02)
    together = [future.result(timeout=60) for future in futures]
    steps, rows = batcher.decodes - before[0], batcher.decoded - before[1]
    assert rows > steps, "the sequences never shared a decode step"
    for (prompt, job_params), digests in zip(jobs, together, strict=True):
        assert digests == _reference_logits(reference, prompt, job_params), f"prompt of {len(prompt)} tokens"


_request = st.fixed_dictionaries(
    {
        "length": st.sampled_from((*LENGTHS, 2, 7)),  # the long prompt less often: it costs the most
        "prompt_seed": st.integers(0, 1000),
        "max_tokens": st.integers(1, 8),
        "temperature": st.sampled_from([0.0, 0.0, 0.9]),
        "seed": st.integers(0, 2**32 - 1),
        "stop": st.sampled_from([(), (".",), ("e", "a")]),
        "delay": st.floats(0.0, 0.05),
    }
)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_request, min_size=2, max_size=4))
def test_any_mix_of_concurrent_requests_replays_alone(batched, solo, requests):
    """Random mixes of concurrent requests (prompt lengths, max_tokens, greedy or seeded sampling, stop
    sequences, arrival times): every request's tokens, text and finish reason, generated in the batch, are
    replayed exactly by a solo engine's re-execution (the verifier's path) and equal a solo generation."""
    jobs = []
    for request in requests:
        params = GenerationParams(max_tokens=request["max_tokens"], temperature=request["temperature"],
                                  seed=request["seed"], stop=request["stop"], n_ctx=512)  # fmt: skip
        jobs.append((prompt_of(request["length"], request["prompt_seed"]), params, request["delay"]))

    def run(job):
        prompt, params, delay = job
        time.sleep(delay)
        return batched.generate(BLOB, load, prompt, params)

    with ThreadPoolExecutor(len(jobs)) as pool:
        generations = list(pool.map(run, jobs))
    for (prompt, params, _), generation in zip(jobs, generations, strict=True):
        replay = solo.replay(BLOB, load, generation_inputs(prompt, params), generation.tokens)
        assert replay.agree, replay.detail
    prompt, params, _ = jobs[0]
    assert solo.generate(BLOB, load, prompt, params) == generations[0]


def test_batched_node_answers_verify_by_reexecution(tmp_path):
    """Concurrent chats on a service decode together; each signed answer verifies at level `reexecuted`, whose
    replay runs on the verifier's own one-sequence engine."""
    with Service(Home(tmp_path / "home")) as service:
        service.publish(MODEL, name="smol/lm", publisher=SigningKey.generate("smol"), license="Apache-2.0")
        questions = ["Name the capital of France.", "Name a color.", "What is 2+2?", "Say hello."]
        params = GenerationParams(max_tokens=10, n_ctx=512)
        barrier = threading.Barrier(len(questions))

        def chat(question: str):
            barrier.wait()
            return service.chat("smol/lm", [{"role": "user", "content": question}], params)

        with ThreadPoolExecutor(len(questions)) as pool:
            answers = list(pool.map(chat, questions))
        batcher = next(iter(service.llm._batchers.values()))
        assert batcher.decoded > batcher.decodes, "the chats never shared a decode step"
        for generation, bundle, _ in answers:
            assert bundle.outputs["tokens"].tolist() == generation.tokens
            report = verify_bundle(bundle, level="reexecuted", load_blob=service.hub.blobs.read_verified)
            assert report.check("reexec").status == "pass", report.check("reexec").detail


def test_a_failing_text_sink_fails_only_its_own_request(batched, solo):
    """A request whose `on_text` raises ends with that error; the one decoding beside it goes on, unchanged."""
    params = GenerationParams(max_tokens=6, n_ctx=512)

    def broken(_piece: str) -> None:
        raise RuntimeError("the client went away")

    with ThreadPoolExecutor(2) as pool:
        failing = pool.submit(batched.generate, BLOB, load, prompt_of(7, 1), params, broken)
        going = pool.submit(batched.generate, BLOB, load, prompt_of(40, 2), params)
        with pytest.raises(RuntimeError, match="the client went away"):
            failing.result(timeout=60)
        assert going.result(timeout=60) == solo.generate(BLOB, load, prompt_of(40, 2), params)
    assert batched.generate(BLOB, load, prompt_of(7, 1), params).tokens  # and the scheduler goes on


class _StreamRecorder(_LogitRecorder):
    """Also notes the KV stream (sequence id) it decoded in."""

    def advance(self, logits: np.ndarray, loaded: object) -> bool:
        self.stream = self.seq
        return super().advance(logits, loaded)


def test_freed_streams_are_reused_lowest_first(batched):
    """llama.cpp computes a decode step over the contiguous range of KV streams its sequences sit in, so the
    batcher hands out the lowest free stream: after sequences leave in any order, the next ones decode in streams
    0, 1, ..., not in whatever streams were freed last (that left 8 sequences spread over 16 streams at a third of
    the throughput, benchmarks/bench_llm.py)."""
    params = GenerationParams(max_tokens=2, n_ctx=512)
    batcher = batched._batcher(BLOB, load, params)
    lengths = (6, 2, 8, 3)  # they leave in the order 1, 3, 0, 2
    first = [_StreamRecorder(prompt_of(3, n), replace(params, max_tokens=steps)) for n, steps in enumerate(lengths)]
    for task in first:
        batcher.submit(task)
    for task in first:
        task.future.result(timeout=60)
    assert sorted(task.stream for task in first) == [0, 1, 2, 3]
    second = [_StreamRecorder(prompt_of(3, 10 + n), params) for n in range(2)]
    for task in second:
        batcher.submit(task)
    for task in second:
        task.future.result(timeout=60)
    assert sorted(task.stream for task in second) == [0, 1]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 120), min_size=1, max_size=16), st.integers(2, 512))
def test_prefill_rounds_give_every_prompt_chunks_a_solo_prefill_agrees_with(lengths, capacity):
    """The plan for prefilling prompts together: every prompt is covered once, in order; each round gives its
    members equal chunks and fits one micro-batch (llama.cpp then keeps it whole); and no chunk after position 0
    has fewer than two tokens (a one-token chunk takes another attention path and changes logits)."""
    lengths = [min(length, capacity) for length in lengths]  # the batcher groups only prompts that fit a round
    done = [0] * len(lengths)
    for members in llama_engine.prefill_rounds(lengths, capacity):
        assert members and len({end - start for _, start, end in members}) == 1
        assert sum(end - start for _, start, end in members) <= capacity
        for i, start, end in members:
            assert start == done[i] and end > start
            assert end - start >= 2 or (start == 0 and end == lengths[i] == 1)
            done[i] = end
    assert done == lengths


def _grouped(batcher, prompts, params):
    """Prompts submitted at once (under the batcher's lock), so that they join in one admission."""
    tasks = [_LogitRecorder(prompt, params) for prompt in prompts]
    with batcher._cond:
        for task in tasks:
            batcher.submit(task)
    return [task.future.result(timeout=120) for task in tasks]


def test_prompts_prefilled_together_give_solo_logits(grouping, batched, solo):
    """Prompts that join at once are prefilled together (fewer llama_decode calls than prompts), and the float32
    bytes of every logit, at the last prompt token and every step after, equal a one-sequence engine's: equal
    lengths, lengths one apart (a shared chunk, then groups of equal remainders), one-token prompts."""
    params = GenerationParams(max_tokens=3, n_ctx=512)
    batcher, alone = grouping._batcher(BLOB, load, params), solo._batcher(BLOB, load, params)
    assert batcher.grouped and not alone.grouped  # its own check found grouped prefill exact on SmolLM2
    assert not batched._batcher(BLOB, load, params).grouped  # off unless asked for
    for lengths, calls in (((50, 50, 50, 50), 1), ((49, 50, 49, 50), 3), ((1, 1, 30, 2), 3)):
        prompts = [prompt_of(length, 100 + n) for n, length in enumerate(lengths)]
        before = batcher.prefills
        together = _grouped(batcher, prompts, params)
        assert batcher.prefills - before == calls, lengths
        assert together == [alone.submit(_LogitRecorder(p, params)).result(timeout=60) for p in prompts], lengths


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(1, 60), min_size=2, max_size=4), st.integers(0, 1000))
def test_any_group_of_prompts_prefilled_together_gives_solo_logits(grouping, solo, lengths, seed):
    """Random groups of prompt lengths joining at once: logits bit-identical to each prompt run alone."""
    params = GenerationParams(max_tokens=3, n_ctx=512)
    batcher, alone = grouping._batcher(BLOB, load, params), solo._batcher(BLOB, load, params)
    prompts = [prompt_of(length, seed + n) for n, length in enumerate(lengths)]
    together = _grouped(batcher, prompts, params)
    assert together == [alone.submit(_LogitRecorder(p, params)).result(timeout=60) for p in prompts]


class _GroupedPrefillAltered:
    """llama_cpp as the batcher sees it, except that a `llama_decode` prefilling two or more prompts together gets
    one of its tokens changed: the logits an inexact kernel would give, where no shape of the engine's kernels
    (one-token chunks and prompts of different lengths included) was found to change SmolLM2's."""

    def __getattr__(self, name: str):
        return getattr(llama_cpp, name)

    def llama_decode(self, ctx, batch):
        sequences = {batch.seq_id[i][0] for i in range(batch.n_tokens)}
        if len(sequences) > 1 and batch.n_tokens > len(sequences):  # prompts together (a decode step has one each)
            batch.token[0] = (batch.token[0] + 1) % VOCAB
        return llama_cpp.llama_decode(ctx, batch)


def test_a_grouped_prefill_that_changes_logits_is_caught_at_startup(grouping, monkeypatch):
    """The startup check runs the batcher's own grouped prefill against solo prefill: when prompts prefilled
    together get other logits than alone, it finds them inexact and the batcher prefills each alone."""
    monkeypatch.setattr(llama_engine, "llama_module", _GroupedPrefillAltered)
    params = GenerationParams(max_tokens=3, n_ctx=320)  # another shape: a new batcher, checked as it starts
    batcher = grouping._batcher(BLOB, load, params)
    assert batcher.limit == 4 and not batcher.grouped
    before = batcher.prefills
    _grouped(batcher, [prompt_of(9, 7), prompt_of(12, 8)], params)
    assert batcher.prefills - before == 2


class _ThreadsSeen:
    """llama_cpp as the batcher sees it, except that each `llama_decode` also notes its batch's size and the
    threads llama.cpp's context holds for it at that moment (read back from the context, not from veriml)."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int, int]] = []

    def __getattr__(self, name: str):
        return getattr(llama_cpp, name)

    def llama_decode(self, ctx, batch):
        self.calls.append((batch.n_tokens, llama_cpp.llama_n_threads(ctx), llama_cpp.llama_n_threads_batch(ctx)))
        return llama_cpp.llama_decode(ctx, batch)


def test_one_token_steps_run_on_fewer_threads():
    """A step of one token (a lone sequence decoding) runs on `small_step_threads`, prompts and steps of two or more
    sequences on every thread: what made a lone stream 1.7x faster on 2 cores (docs/llm.md), checked in llama.cpp's
    context as each batch is decoded."""
    engine = LlamaEngine(threads=2, max_sequences=4)
    try:
        params = GenerationParams(max_tokens=6, n_ctx=512)
        batcher = engine._batcher(BLOB, load, params)
        seen = batcher._cpp = _ThreadsSeen()
        # Prompts of 7+ tokens, so that every batch of 1-4 tokens is a decode step; the lengths stagger the
        # finishes, so steps of one sequence and of several both occur.
        futures = [batcher.submit(_LogitRecorder(prompt_of(7 + n, n), replace(params, max_tokens=3 + 2 * n)))
                   for n in range(4)]  # fmt: skip
        for future in futures:
            future.result(timeout=60)
    finally:
        engine.close()
    assert llama_engine.small_step_threads(2) == 1
    sizes = {n for n, _, _ in seen.calls}
    assert 1 in sizes and any(2 <= n <= 4 for n in sizes), f"decode batch sizes seen: {sorted(sizes)}"
    for n_tokens, threads, threads_batch in seen.calls:
        # llama.cpp computes a one-token batch on n_threads and any larger one on n_threads_batch.
        assert (threads if n_tokens == 1 else threads_batch) == (1 if n_tokens == 1 else 2), (n_tokens, threads)
