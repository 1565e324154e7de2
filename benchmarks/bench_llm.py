"""Concurrent text generation with SmolLM2-135M-Instruct (Q4_1 GGUF), greedy, side by side: aggregate
generated tokens/s and the median time to first token at 1, 4, 8 and 16 concurrent streams, for

1. llama.cpp's own server with as many parallel slots as streams: the `llama-server` binary built from the
   llama.cpp that llama-cpp-python 0.3.36 vendors, with the same fixed instruction set (`--server-binary`), its
   defaults otherwise (`--parallel N`); without it, llama-cpp-python's server (`llama_cpp.server`), which
   serves one request at a time (it has no parallel slots);
2. veriml's engine in process (`LlamaEngine.generate` from N threads: continuous batching);
3. a devnet node's OpenAI endpoint (`POST /v1/chat/completions`, streamed, N concurrent clients): tokenizing,
   batched generation, the stream's hash chain, signing, the durable log append, HTTP;

and bare llama-cpp-python at 1 stream (`Llama.eval` and an argmax, nothing else). For each, whether its answers
replay exactly when run alone: veriml's answers are re-executed token for token by a one-sequence engine (the
verifier's path); the server's answers are compared with the same requests sent to it one at a time.

Targets (issue 15): the node's aggregate at 8 streams >= 3x its 1-stream figure (floor 2x); at 16 streams
>= 0.9x llama.cpp's server; at 1 stream within 5% of bare llama.cpp; time to first token within 10% of the
server's.

At 1 and 4 streams each subject runs several rounds (`--samples`), so that the medians are over 8 answers.

Usage: python benchmarks/bench_llm.py [--threads 2] [--tokens 64] [--server-binary PATH] [--model GGUF]
       [--levels 1,4,8,16] [--samples 8]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

from veriml import devnet, examples
from veriml.client import Client
from veriml.hub import describe_gguf
from veriml.identity import SigningKey
from veriml.receipts import Bundle
from veriml.runtime import GenerationParams, LlamaEngine, generation_inputs
from veriml.runtime.chat import render_chat
from veriml.runtime.llama_engine import set_openmp_waiting, small_step_threads
from veriml.service.publish import hash_file

# How OpenMP threads wait, as veriml's engine sets it before it loads llama.cpp: the bare baseline runs in this
# process and llama.cpp's server inherits this environment, so all three wait alike.
set_openmp_waiting()

LEVELS = (1, 4, 8, 16)
N_CTX, N_BATCH = 2048, 512
ANIMALS = ("dragon", "otter", "falcon", "tortoise", "wolf", "heron", "badger", "octopus", "lynx", "beetle", "crane",
           "salmon", "moth", "bison", "gecko", "raven")  # fmt: skip


def messages(n: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Write a long story about a {ANIMALS[n]} who learns to fly. Describe "
                                        f"every day of its training."}]  # fmt: skip


@dataclass
class Answer:
    ttft: float
    tokens: list[int]
    replay: Callable[[], bool] | None = None  # True when a solo re-execution gives the same tokens


@dataclass
class Level:
    rate: float  # generated tokens per second, all streams together
    ttft: float  # median time to first token, seconds
    answers: list[Answer]


def concurrently(run: Callable[[int], Answer], streams: int, rounds: int = 1) -> Level:
    """`rounds` times, `streams` requests at once: the aggregate rate over all rounds, the median time to first
    token over every answer (a single request's time to first token is too noisy on a shared machine)."""
    answers, wall = [], 0.0
    for _ in range(rounds):
        barrier = threading.Barrier(streams + 1)

        def one(n: int, barrier: threading.Barrier = barrier) -> Answer:
            barrier.wait()
            return run(n)

        with ThreadPoolExecutor(streams) as pool:
            futures = [pool.submit(one, n) for n in range(streams)]
            barrier.wait()
            start = time.perf_counter()
            answers += [f.result() for f in futures]
            wall += time.perf_counter() - start
    total = sum(len(a.tokens) for a in answers)
    return Level(total / wall, statistics.median(a.ttft for a in answers), answers)


class Bare:
    """llama-cpp-python with nothing around it: eval the prompt, then argmax and eval one token at a time."""

    def __init__(self, model: Path, prompts: list[list[int]], threads: int, size: int) -> None:
        import llama_cpp

        self.cpp, self.prompts, self.size = llama_cpp, prompts, size
        self.llm = llama_cpp.Llama(model_path=str(model), n_ctx=N_CTX, n_batch=N_BATCH, n_ubatch=N_BATCH,
                                   n_threads=small_step_threads(threads), n_threads_batch=threads,
                                   verbose=False)  # fmt: skip
        self.n_vocab = self.llm.n_vocab()

    def run(self, n: int) -> Answer:
        llm, start = self.llm, time.perf_counter()
        llm.reset()
        llm.eval(self.prompts[n])
        tokens, first = [], 0.0
        for step in range(self.size):
            logits = np.ctypeslib.as_array(self.cpp.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(self.n_vocab,))
            tokens.append(int(np.argmax(logits)))
            first = first or time.perf_counter() - start
            if llm.token_eos() == tokens[-1]:
                break
            if step + 1 < self.size:
                llm.eval([tokens[-1]])
        return Answer(first, tokens)


class Engine:
    """veriml's engine in this process; `loop()` reads its scheduler's clocks (seconds in prompt prefill, in
    decode steps, and busy in all) to split a level's wall time."""

    def __init__(self, model: Path, prompts: list[list[int]], threads: int, size: int, solo: LlamaEngine) -> None:
        self.llm, self.model, self.prompts, self.solo = (
            LlamaEngine(threads, max_sequences=len(prompts)),
            model,
            prompts,
            solo,
        )
        self.blob, _ = hash_file(model)
        self.params = GenerationParams(max_tokens=size, n_ctx=N_CTX, n_batch=N_BATCH, n_ubatch=N_BATCH)

    def loop(self) -> tuple[float, float, float]:
        batchers = list(self.llm._batchers.values())
        return tuple(sum(getattr(b, name) for b in batchers)
                     for name in ("prefill_seconds", "decode_seconds", "busy_seconds"))  # type: ignore[return-value]  # fmt: skip

    def run(self, n: int) -> Answer:
        start, first = time.perf_counter(), []
        generation = self.llm.generate(self.blob, lambda: self.model, self.prompts[n], self.params,
                                       lambda _piece: first.append(time.perf_counter()))  # fmt: skip
        inputs = generation_inputs(self.prompts[n], self.params)

        def replay() -> bool:
            return self.solo.replay(self.blob, lambda: self.model, inputs, generation.tokens).agree

        return Answer(first[0] - start, generation.tokens, replay)


class Node:
    def __init__(self, url: str, model: Path, size: int, solo: LlamaEngine) -> None:
        self.url, self.model, self.size, self.solo = url, model, size, solo
        self.http = httpx.Client(timeout=600)

    def run(self, n: int) -> Answer:
        body = {"model": "bench/smollm2", "messages": messages(n), "max_tokens": self.size, "temperature": 0,
                "stream": True}  # fmt: skip
        start, first, veriml = time.perf_counter(), 0.0, None
        with self.http.stream("POST", self.url + "/v1/chat/completions", json=body) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if not line.startswith("data: {"):
                    continue
                event = json.loads(line[6:])
                if not first and event.get("veriml_chunk", {}).get("tokens"):
                    first = time.perf_counter() - start
                veriml = event.get("veriml") or veriml
        assert veriml is not None, "the stream ended without its receipt"
        bundle = Bundle.from_json(veriml["bundle"])
        tokens = bundle.outputs["tokens"].tolist()

        def replay() -> bool:
            return self.solo.replay(bundle.manifest.body.blob, lambda: self.model, bundle.inputs, tokens).agree

        return Answer(first, tokens, replay)


class Server:
    """llama.cpp's server: `llama-server --parallel N` (token ids in and out through /completion), or
    llama-cpp-python's server (one slot; text prompts through /v1/completions, answers compared as text)."""

    def __init__(self, model: Path, prompts: list[list[int]], texts: list[str], threads: int, size: int,
                 binary: str | None, streams: int) -> None:  # fmt: skip
        self.prompts, self.texts, self.size, self.native = prompts, texts, size, binary is not None
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        if binary is not None:
            # Every subject gets llama-cpp-python's default thread split, which the engine uses too: half the
            # threads for a step of one token (-t), all for steps of more (-tb).
            command = [binary, "-m", str(model), "--host", "127.0.0.1", "--port", str(port),
                       "-t", str(small_step_threads(threads)), "-tb", str(threads), "-c", str(N_CTX * streams),
                       "-np", str(streams), "-b", str(N_BATCH), "-ub", str(N_BATCH), "--no-webui"]  # fmt: skip
            self.name = f"llama-server -np {streams}"
        else:
            command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
                       "--port", str(port), "--n_threads", str(small_step_threads(threads)),
                       "--n_threads_batch", str(threads), "--n_ctx", str(N_CTX),
                       "--n_batch", str(N_BATCH), "--interrupt_requests", "false"]  # fmt: skip
            # It serves one request at a time; by default a new request even interrupts the one streaming.
            self.name = "llama_cpp.server (1 slot)"
        # Kept after the run: it is where to look when the server did not start.
        self.log = tempfile.NamedTemporaryFile(prefix="bench-llm-server-", suffix=".log", delete=False)  # noqa: SIM115
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)
        self.http = httpx.Client(timeout=600)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if self.http.get(self.url + ("/health" if self.native else "/v1/models")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"{self.name} did not start; see {self.log.name}")

    def run(self, n: int) -> Answer:
        if self.native:
            body = {"prompt": self.prompts[n], "n_predict": self.size, "temperature": 0, "stream": True,
                    "cache_prompt": False, "return_tokens": True}  # fmt: skip
            path = "/completion"
        else:
            body = {"prompt": self.texts[n], "max_tokens": self.size, "temperature": 0, "stream": True}
            path = "/v1/completions"
        for attempt in range(2):
            try:
                return self._send(path, body)
            except httpx.RemoteProtocolError:  # it closed a keep-alive connection that sat idle: once more
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _send(self, path: str, body: dict) -> Answer:
        start, first, tokens = time.perf_counter(), 0.0, []
        with self.http.stream("POST", self.url + path, json=body) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if not line.startswith("data: {"):
                    continue
                event = json.loads(line[6:])
                if self.native:
                    got = event.get("tokens") or []
                else:  # no token ids: one entry per text piece, compared as text
                    piece = event["choices"][0].get("text") or ""
                    got = [piece] if piece else []
                if got and not first:
                    first = time.perf_counter() - start
                tokens.extend(got)
        return Answer(first, tokens)

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=64, help="max_tokens of every stream")
    parser.add_argument("--server-binary", default=shutil.which("llama-server"),
                        help="llama.cpp's llama-server (default: on PATH; else llama-cpp-python's server)")  # fmt: skip
    parser.add_argument("--model", type=Path, help="another GGUF (default: SmolLM2-135M-Instruct Q4_1)")
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)), help="concurrent streams to measure")
    parser.add_argument("--samples", type=int, default=8,
                        help="at N streams, run max(1, samples // N) rounds (medians over more answers)")  # fmt: skip
    args = parser.parse_args()
    levels = tuple(int(n) for n in args.levels.split(","))
    model = args.model or examples.smollm2_path()
    if model is None:
        raise SystemExit("SmolLM2 GGUF not found: run `make install`")
    import llama_cpp

    template = describe_gguf(model).chat_template
    vocab = llama_cpp.Llama(model_path=str(model), n_ctx=N_CTX, verbose=False, vocab_only=True)
    texts = [render_chat(template, messages(n)) for n in range(max(levels))]
    prompts = [vocab.tokenize(t.encode(), add_bos=False, special=True) for t in texts]
    del vocab
    solo = LlamaEngine(args.threads, max_sequences=1)
    os.environ["VERIML_NODE_LLM_MAX_SEQUENCES"] = str(max(levels))
    results: dict[tuple[str, int], Level] = {}
    loops: dict[int, tuple[float, float, float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="veriml-bench-llm-") as tmp:
        network = devnet.up(Path(tmp) / "devnet", 1, audit_fraction=0.0)
        server = Server(model, prompts, texts, args.threads, args.tokens, args.server_binary or None, max(levels))
        try:
            with Client(network.urls, admin_token=network.admin_token) as client:
                client.publish(model, "bench/smollm2", SigningKey.generate("bench"), node=network.urls[0])
            engine = Engine(model, prompts, args.threads, args.tokens, solo)
            subjects: dict[str, Callable[[int], Answer]] = {
                "server": server.run,
                "engine": engine.run,
                "node": Node(network.urls[0], model, args.tokens, solo).run,
            }
            bare = Bare(model, prompts, args.threads, args.tokens)
            for run in (*subjects.values(), bare.run):
                run(0)  # warm up: load models, fill caches
            results[("bare", 1)] = concurrently(bare.run, 1, max(1, args.samples))
            del bare
            for streams in levels:
                rounds = max(1, args.samples // streams)
                for name, run in subjects.items():  # interleaved, so that the shared machine's load falls alike
                    before, start = engine.loop(), time.perf_counter()
                    results[(name, streams)] = concurrently(run, streams, rounds)
                    if name == "engine":
                        wall = time.perf_counter() - start
                        prefill, decode, busy = (b - a for a, b in zip(before, engine.loop(), strict=True))
                        loops[streams] = (wall, prefill, decode, busy - prefill - decode)
            # The server's answers alone, one request at a time, to compare with its answers under load.
            alone = [server.run(n).tokens for n in range(max(levels))]
        finally:
            server.close()
            devnet.down(Path(tmp) / "devnet")
    print(f"{describe_gguf(model).model_name or model.name}, greedy, {args.threads} threads, max_tokens {args.tokens}, "
          f"prompts "
          f"{min(map(len, prompts))}-{max(map(len, prompts))} tokens; server: {server.name}")  # fmt: skip
    print("aggregate generated tokens/s | p50 time to first token (ms) | answers exact when run alone")
    print(f"{'streams':>7} {'llama.cpp server':>28} {'veriml engine':>28} {'node OpenAI endpoint':>28}")
    for streams in levels:
        cells = []
        for name in ("server", "engine", "node"):
            level = results[(name, streams)]
            if name == "server":
                exact = sum(a.tokens == alone[n % streams] for n, a in enumerate(level.answers))
            else:
                exact = sum(bool(a.replay and a.replay()) for a in level.answers)
            cells.append(f"{level.rate:7.1f} {level.ttft * 1000:6.0f}ms {exact:2d}/{len(level.answers):<2d}exact")
        print(f"{streams:>7} " + " ".join(f"{c:>28}" for c in cells))
    node, engine, server_rate = ({s: results[(k, s)].rate for s in levels} for k in ("node", "engine", "server"))
    bare_rate = results[("bare", 1)].rate
    print(f"bare llama-cpp-python, 1 stream: {bare_rate:.1f} tokens/s, first token "
          f"{results[('bare', 1)].ttft * 1000:.0f} ms")  # fmt: skip
    one, eight, top = min(levels), (8 if 8 in levels else max(levels)), max(levels)
    print(f"node {eight} streams / node {one} stream: {node[eight] / node[one]:.2f}x (target at 8: >= 3x, floor 2x)")
    print(f"node {top} streams / server {top} streams: {node[top] / server_rate[top]:.2f}x (target at 16: >= 0.9x)")
    print(f"engine {top} streams / server {top} streams: {engine[top] / server_rate[top]:.2f}x")
    print(f"node {one} stream / bare: {node[one] / bare_rate:.2f}; engine {one} stream / bare: "
          f"{engine[one] / bare_rate:.2f} (target within 5%)")  # fmt: skip
    for streams in levels:
        wall, prefill, decode, python = loops[streams]
        print(f"engine loop at {streams:>2} streams: {wall:.2f} s wall; prompt prefill {prefill / wall:4.0%}, decode "
              f"steps {decode / wall:4.0%}, Python in the loop {python / wall:4.0%}, idle "
              f"{(wall - prefill - decode - python) / wall:4.0%}")  # fmt: skip
    for streams in levels:
        ratio = results[("node", streams)].ttft / results[("server", streams)].ttft
        print(f"p50 first token, node / server at {streams:>2} streams: {ratio:.2f} (target <= 1.10)")


if __name__ == "__main__":
    main()
