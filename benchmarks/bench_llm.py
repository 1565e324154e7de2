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

PROMPT = "Write a long story about a dragon who learns to fly. Describe every day of its training."
MESSAGES = [{"role": "user", "content": PROMPT}]
SIZES = (64, 256)
N_CTX, N_BATCH = 2048, 512


def bare(model: Path, tokens: list[int], size: int, threads: int) -> float:
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(model), n_ctx=N_CTX, n_batch=N_BATCH, n_ubatch=N_BATCH, n_threads=threads,
                          n_threads_batch=threads, verbose=False)  # fmt: skip
    n_vocab = llm.n_vocab()

    def once() -> float:
        start = time.perf_counter()
        llm.reset()
        llm.eval(tokens)
        for step in range(size):
            logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(n_vocab,))
            token = int(np.argmax(logits))
            if step + 1 < size:
                llm.eval([token])
        return size / (time.perf_counter() - start)

    once()  # warm up
    return statistics.median(once() for _ in range(RUNS))


def engine(model: Path, tokens: list[int], size: int, threads: int) -> tuple[float, int]:
    llm = LlamaEngine(threads)
    blob, _ = hash_file(model)
    params = GenerationParams(max_tokens=size, n_ctx=N_CTX, n_batch=N_BATCH, n_ubatch=N_BATCH)
    generated = llm.generate(blob, lambda: model, tokens, params)  # warm up (and load)

    def once() -> float:
        start = time.perf_counter()
        llm.generate(blob, lambda: model, tokens, params)
        return len(generated.tokens) / (time.perf_counter() - start)

    return statistics.median(once() for _ in range(RUNS)), len(generated.tokens)


def node_endpoint(url: str, size: int) -> float:
    body = {"model": "bench/smollm2", "messages": MESSAGES, "max_tokens": size, "temperature": 0}
    with httpx.Client(timeout=120) as http:
        http.post(url + "/v1/chat/completions", json=body).raise_for_status()

        def once() -> float:
            start = time.perf_counter()
            answer = http.post(url + "/v1/chat/completions", json=body).json()
            return answer["usage"]["completion_tokens"] / (time.perf_counter() - start)

        return statistics.median(once() for _ in range(RUNS))


def quorum(urls: list[str], size: int) -> float:
    with Client(urls) as client:
        client.chat("bench/smollm2", MESSAGES, verify="quorum:3", max_tokens=size)

        def once() -> float:
            start = time.perf_counter()
            result = client.chat("bench/smollm2", MESSAGES, verify="quorum:3", max_tokens=size)
            return result.bundle.outputs["tokens"].size / (time.perf_counter() - start)

        return statistics.median(once() for _ in range(RUNS))


def main() -> None:
    global RUNS
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    RUNS = args.runs
    model = examples.smollm2_path()
    if model is None:
        raise SystemExit("SmolLM2 GGUF not found: run `make install`")
    import llama_cpp

    template = describe_gguf(model).chat_template
    probe = llama_cpp.Llama(model_path=str(model), n_ctx=N_CTX, verbose=False, vocab_only=True)
    tokens = probe.tokenize(render_chat(template, MESSAGES).encode(), add_bos=False, special=True)
    del probe
    rows: dict[int, dict[str, float]] = {}
    counts: dict[int, int] = {}
    for size in SIZES:
        rows[size] = {"bare": bare(model, tokens, size, args.threads)}
        rows[size]["engine"], counts[size] = engine(model, tokens, size, args.threads)
    with tempfile.TemporaryDirectory(prefix="veriml-bench-llm-") as tmp:
        network = devnet.up(Path(tmp) / "devnet", 3, audit_fraction=0.0)
        try:
            with Client(network.urls, admin_token=network.admin_token) as client:
                client.publish(model, "bench/smollm2", SigningKey.generate("bench"), node=network.urls[0])
                for url in network.urls[1:]:
                    client.pin("bench/smollm2", url)
            for size in SIZES:
                rows[size]["node"] = node_endpoint(network.urls[0], size)
                rows[size]["quorum:3"] = quorum(network.urls, size)
        finally:
            devnet.down(Path(tmp) / "devnet")
    print(f"SmolLM2-135M-Instruct Q4_1, greedy, {args.threads} threads, prompt {len(tokens)} tokens, "
          f"median of {RUNS} runs; generated tokens per second (ratio to bare llama-cpp-python)")  # fmt: skip
    print(f"{'tokens':>7} {'bare':>8} {'engine':>16} {'node endpoint':>16} {'quorum:3':>16}")
    for size in SIZES:
        row = rows[size]
        cells = [f"{row[k]:8.1f} ({row[k] / row['bare']:4.2f})" for k in ("engine", "node", "quorum:3")]
        print(f"{size:>7} {row['bare']:8.1f} " + " ".join(f"{c:>16}" for c in cells)
              + ("" if counts[size] == size else f"  (stopped at {counts[size]} tokens)"))  # fmt: skip


RUNS = 3

if __name__ == "__main__":
    main()
