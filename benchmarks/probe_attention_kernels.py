"""Probe: what the engine's attention kernels (flash attention over a bf16 KV cache) cost or gain against the ones
it used before (attention without flash attention, an f16 cache), and what they do to the model's predictions.

    PYTHONPATH=src .venv/bin/python benchmarks/probe_attention_kernels.py [--levels 1,8,16] [--rounds 5]

1. Speed: two engines in one process, the engine as it is and one whose contexts are made with the former kernels
   (llama.cpp's context parameters changed as the batcher makes its context), run alternately at each number of
   concurrent greedy streams (bench_llm's 16 prompts, 64 tokens each), so that the machine's drift falls on both;
   prints each round and the median paired ratio.
2. Predictions: llama-cpp-python's own Llama on 1,500 tokens of this repository's docs, all logits, with flash
   attention off (f16 cache, the former kernels), on with an f16 cache (llama.cpp's default), on with bf16 (the
   engine's) and on with q8_0: the mean negative log-likelihood of the next token, and the mean KL divergence and
   top-1 agreement against the former kernels.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

from veriml import examples
from veriml.hub import describe_gguf
from veriml.runtime import LlamaEngine, llama_engine
from veriml.runtime.chat import render_chat

sys.path.insert(0, str(Path(__file__).parent))
import bench_llm  # the benchmark's prompts and its engine driver

GGML_TYPE_F16, GGML_TYPE_Q8_0 = 1, 8
ROOT = Path(__file__).resolve().parents[1]


class FormerKernels:
    """llama_cpp as the batcher sees it, except that its contexts get attention without flash attention over an
    f16 cache (the engine's kernels before)."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def llama_init_from_model(self, model: Any, params: Any) -> Any:
        params.flash_attn_type = self._real.LLAMA_FLASH_ATTN_TYPE_DISABLED
        params.type_k = params.type_v = GGML_TYPE_F16
        return self._real.llama_init_from_model(model, params)


def speed(model: Path, levels: list[int], rounds: int) -> None:
    import llama_cpp

    template = describe_gguf(model).chat_template
    vocab = llama_cpp.Llama(model_path=str(model), n_ctx=2048, verbose=False, vocab_only=True)
    prompts = [vocab.tokenize(render_chat(template, bench_llm.messages(n)).encode(), add_bos=False, special=True)
               for n in range(max(levels))]  # fmt: skip
    real = llama_engine.llama_module
    engines: dict[str, bench_llm.Engine] = {}
    for name in ("former", "engine"):
        llama_engine.llama_module = (lambda: FormerKernels(real())) if name == "former" else real  # type: ignore[assignment]
        try:
            engine = bench_llm.Engine(model, prompts, 2, 64, LlamaEngine(2, max_sequences=1))
            for streams in levels:  # every context made now, with these kernels
                bench_llm.concurrently(engine.run, streams)
        finally:
            llama_engine.llama_module = real  # type: ignore[assignment]
        engines[name] = engine
    rates: dict[tuple[str, int], list[float]] = {}
    for r in range(rounds):
        order = list(engines.items()) if r % 2 == 0 else list(engines.items())[::-1]
        for streams in levels:
            for name, engine in order:
                level = bench_llm.concurrently(engine.run, streams, max(1, 8 // streams))
                rates.setdefault((name, streams), []).append(level.rate)
        print(f"round {r}: " + ", ".join(f"{n} {s}: {v[-1]:.1f}" for (n, s), v in rates.items()), flush=True)
    for streams in levels:
        former, now = rates[("former", streams)], rates[("engine", streams)]
        ratios = [b / a for a, b in zip(former, now, strict=True)]
        print(f"{streams:>2} streams: former kernels {statistics.median(former):.1f} tokens/s, flash attention over "
              f"bf16 {statistics.median(now):.1f}; paired ratio median {statistics.median(ratios):.2f} "
              f"({min(ratios):.2f}-{max(ratios):.2f})")  # fmt: skip


def predictions(model: Path) -> None:
    import llama_cpp

    text = (ROOT / "docs" / "llm.md").read_text()[:6000] + (ROOT / "README.md").read_text()[:3000]
    kernels = {
        "flash attention off, f16 cache (former)": {"flash_attn": False},
        "flash attention, f16 cache (llama.cpp's default)": {"flash_attn": True},
        "flash attention, bf16 cache (the engine's)": {"flash_attn": True, "type_k": 30, "type_v": 30},
        "flash attention, q8_0 cache": {"flash_attn": True, "type_k": GGML_TYPE_Q8_0, "type_v": GGML_TYPE_Q8_0},
    }
    results: dict[str, tuple[list[int], np.ndarray]] = {}
    for name, settings in kernels.items():
        llm = llama_cpp.Llama(model_path=str(model), n_ctx=2048, n_batch=512, logits_all=True, verbose=False,
                              **settings)  # fmt: skip
        tokens = llm.tokenize(text.encode())[:1500]
        llm.eval(tokens)
        results[name] = tokens, np.array(llm.scores[: len(tokens)], dtype=np.float64)
        llm.close()

    def log_softmax(x: np.ndarray) -> np.ndarray:
        x = x - x.max(-1, keepdims=True)
        return x - np.log(np.exp(x).sum(-1, keepdims=True))

    tokens, former = next(iter(results.values()))
    reference = log_softmax(former)
    following = np.array(tokens[1:])
    print(f"{len(tokens)} tokens of docs/llm.md and README.md")
    for name, (_, logits) in results.items():
        scores = log_softmax(logits)
        nll = -scores[np.arange(len(tokens) - 1), following].mean()
        kl = (np.exp(reference) * (reference - scores)).sum(-1).mean()
        top1 = (former.argmax(-1) == logits.argmax(-1)).mean()
        print(f"{name}: next-token NLL {nll:.4f}, KL against the former {kl:.2e}, top-1 agreement {top1:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", default="1,8,16")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    model = examples.smollm2_path()
    if model is None:
        raise SystemExit("SmolLM2 GGUF not found: run `make install`")
    predictions(model)
    speed(model, [int(n) for n in args.levels.split(",")], args.rounds)


if __name__ == "__main__":
    main()
