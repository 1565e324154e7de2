"""Generated tokens per second for SmolLM2-135M-Instruct (Q4_1 GGUF), greedy, one run:

1. bare llama-cpp-python: `Llama.eval` and argmax over the logits, nothing else;
2. veriml's engine (`LlamaEngine.generate`: the sampler, stop handling, incremental text);
3. a devnet node's OpenAI endpoint (`POST /v1/chat/completions`: tokenizing, generation, signing, the durable
   log append, HTTP);
4. `Client.chat(verify="quorum:3")` on a 3-node devnet (three generations in parallel on this machine's cores,
   the bundles fetched and judged).

for 64 and 256 generated tokens, the median of a few runs each, with ratios to the bare figure.
Targets: the engine within 5% of bare llama.cpp; the node endpoint within 15%.

Usage: python benchmarks/bench_llm.py [--runs 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from veriml import devnet, examples
from veriml.client import Client
from veriml.hub import describe_gguf
from veriml.identity import SigningKey
from veriml.runtime import GenerationParams, LlamaEngine
from veriml.runtime.chat import render_chat
from veriml.service.publish import hash_file

# veriml's engine sets this before it loads llama.cpp (OpenMP threads that spin while waiting slowed generation
# tenfold on busy cores); the bare baseline runs in this process, so it gets the same setting.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

PROMPT = "Write a long story about a dragon who learns to fly. Describe every day of its training."
MESSAGES = [{"role": "user", "content": PROMPT}]
SIZES = (64, 256)
N_CTX, N_BATCH = 2048, 512


class Bare:
    """llama-cpp-python with nothing around it: eval the prompt, then argmax and eval one token at a time."""

    def __init__(self, model: Path, tokens: list[int], threads: int) -> None:
        import llama_cpp

        self.cpp, self.tokens = llama_cpp, tokens
        self.llm = llama_cpp.Llama(model_path=str(model), n_ctx=N_CTX, n_batch=N_BATCH, n_ubatch=N_BATCH,
                                   n_threads=threads, n_threads_batch=threads, verbose=False)  # fmt: skip
        self.n_vocab = self.llm.n_vocab()

    def rate(self, size: int) -> float:
        llm, start = self.llm, time.perf_counter()
        llm.reset()
        llm.eval(self.tokens)
        for step in range(size):
            logits = np.ctypeslib.as_array(self.cpp.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(self.n_vocab,))
            token = int(np.argmax(logits))
            if step + 1 < size:
                llm.eval([token])
        return size / (time.perf_counter() - start)


class Engine:
    def __init__(self, model: Path, tokens: list[int], threads: int) -> None:
        self.llm, self.model, self.tokens = LlamaEngine(threads), model, tokens
        self.blob, _ = hash_file(model)
        self.generated: dict[int, int] = {}

    def rate(self, size: int) -> float:
        params = GenerationParams(max_tokens=size, n_ctx=N_CTX, n_batch=N_BATCH, n_ubatch=N_BATCH)
        start = time.perf_counter()
        generation = self.llm.generate(self.blob, lambda: self.model, self.tokens, params)
        self.generated[size] = len(generation.tokens)
        return len(generation.tokens) / (time.perf_counter() - start)


class Node:
    def __init__(self, url: str) -> None:
        self.url, self.http = url, httpx.Client(timeout=300)

    def rate(self, size: int) -> float:
        body = {"model": "bench/smollm2", "messages": MESSAGES, "max_tokens": size, "temperature": 0}
        start = time.perf_counter()
        response = self.http.post(self.url + "/v1/chat/completions", json=body)
        response.raise_for_status()
        return response.json()["usage"]["completion_tokens"] / (time.perf_counter() - start)


class Quorum:
    def __init__(self, urls: list[str]) -> None:
        self.client = Client(urls, timeout=300)

    def rate(self, size: int) -> float:
        start = time.perf_counter()
        result = self.client.chat("bench/smollm2", MESSAGES, verify="quorum:3", max_tokens=size)
        return result.bundle.outputs["tokens"].size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    model = examples.smollm2_path()
    if model is None:
        raise SystemExit("SmolLM2 GGUF not found: run `make install`")
    import llama_cpp

    template = describe_gguf(model).chat_template
    probe = llama_cpp.Llama(model_path=str(model), n_ctx=N_CTX, verbose=False, vocab_only=True)
    tokens = probe.tokenize(render_chat(template, MESSAGES).encode(), add_bos=False, special=True)
    del probe
    samples: dict[tuple[str, int], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="veriml-bench-llm-") as tmp:
        network = devnet.up(Path(tmp) / "devnet", 3, audit_fraction=0.0)
        try:
            with Client(network.urls, admin_token=network.admin_token) as client:
                client.publish(model, "bench/smollm2", SigningKey.generate("bench"), node=network.urls[0])
                for url in network.urls[1:]:
                    client.pin("bench/smollm2", url)
            subjects = {"bare": Bare(model, tokens, args.threads), "engine": Engine(model, tokens, args.threads),
                        "node": Node(network.urls[0]), "quorum:3": Quorum(network.urls)}  # fmt: skip
            for size in SIZES:
                for subject in subjects.values():
                    subject.rate(size)  # warm up: load models, fill caches
                # Interleaved, so that the load of this shared machine falls on all four alike.
                for _ in range(args.runs):
                    for name, subject in subjects.items():
                        samples.setdefault((name, size), []).append(subject.rate(size))
            generated = subjects["engine"].generated  # type: ignore[attr-defined]
        finally:
            devnet.down(Path(tmp) / "devnet")
    print(f"SmolLM2-135M-Instruct Q4_1, greedy, {args.threads} threads, prompt {len(tokens)} tokens, median of "
          f"{args.runs} interleaved runs; generated tokens/s (ratio to bare llama-cpp-python)")  # fmt: skip
    print(f"{'tokens':>7} {'bare':>8} {'engine':>16} {'node endpoint':>16} {'quorum:3':>16}")
    for size in SIZES:
        rate = {name: statistics.median(samples[(name, size)]) for name in ("bare", "engine", "node", "quorum:3")}
        cells = [f"{rate[k]:8.1f} ({rate[k] / rate['bare']:4.2f})" for k in ("engine", "node", "quorum:3")]
        print(f"{size:>7} {rate['bare']:8.1f} " + " ".join(f"{c:>16}" for c in cells)
              + ("" if generated[size] == size else f"  (stopped at {generated[size]} tokens)"))  # fmt: skip


if __name__ == "__main__":
    main()
