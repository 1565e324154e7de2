"""Probe: are several prompts prefilled together in one llama_decode (each in its own KV stream, kv_unified off,
the engine's attention kernels, no decode rows in that batch) bit-identical to each prefilled alone? Compares the
float32 bytes of the last prompt token's logits and of the following greedy decode steps' logits (decoded one
token per stream per batch, the layout known to be exact).

    PYTHONPATH=src .venv/bin/python benchmarks/probe_prefill.py [--mixes 16] [--streams 8] [--seed 2]

Parts: one prompt prefilled in chunks of 1-32 tokens; 2-N prompts of equal lengths in one llama_decode; of
different lengths in one llama_decode (llama.cpp's split_equal then cuts the longer ones); of different lengths
in rounds of equal chunks of two or more tokens (`llama_engine.prefill_rounds`, what the engine does); a first
chunk of one token at position 0. Then the time to prefill N prompts of 50 tokens alone and together.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
from pathlib import Path

import numpy as np

from veriml.codec import Digest
from veriml.runtime import llama_engine

MODEL = Path("models/SmolLM2-135M-Instruct.Q4_1.gguf")


class Ctx:
    def __init__(self, loaded, cpp, streams: int, n_ctx: int, n_batch: int, n_ubatch: int, threads: int = 2):
        params = type(loaded.llm.context_params).from_buffer_copy(loaded.llm.context_params)
        params.n_ctx = n_ctx * streams
        params.n_batch = max(n_batch * 8, streams)  # room for a group; solo prompts go in chunks of n_batch
        params.n_ubatch = n_ubatch
        params.n_seq_max = streams
        params.n_threads = params.n_threads_batch = threads
        params.kv_unified = False
        params.flash_attn_type = cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED  # the engine's kernels (llama_engine.KERNELS)
        params.type_k = params.type_v = llama_engine.GGML_TYPE_BF16
        params.no_perf = True
        self.cpp, self.loaded, self.n_batch = cpp, loaded, n_batch
        self.ctx = cpp.llama_init_from_model(loaded.llm._model.model, params)
        self.memory = cpp.llama_get_memory(self.ctx)
        self.batch = cpp.llama_batch_init(params.n_batch, 0, 1)

    def fill(self, entries):
        b = self.batch
        b.n_tokens = len(entries)
        for i, (token, pos, seq, logits) in enumerate(entries):
            b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = token, pos, 1, logits
            b.seq_id[i][0] = seq

    def decode(self, entries):
        self.fill(entries)
        status = self.cpp.llama_decode(self.ctx, self.batch)
        assert status == 0, status

    def logits(self, i):
        p = self.cpp.llama_get_logits_ith(self.ctx, i)
        return np.ctypeslib.as_array(p, shape=(self.loaded.n_vocab,)).copy()

    def clear(self):
        self.cpp.llama_memory_clear(self.memory, True)

    def run_plan(self, prompts, streams, rounds, steps: int):
        """Prefill by rounds: each round one llama_decode holding, per member, the tokens [start, end)."""
        self.clear()
        seen = [[] for _ in prompts]
        nxt = [None] * len(prompts)
        for rnd in rounds:
            entries, last = [], {}
            for i, a, b in rnd:
                for k in range(a, b):
                    entries.append((prompts[i][k], k, streams[i], k == len(prompts[i]) - 1))
                if b == len(prompts[i]):
                    last[i] = len(entries) - 1
            self.decode(entries)
            for i, idx in last.items():
                lg = self.logits(idx)
                seen[i].append(hashlib.sha256(lg.tobytes()).hexdigest()[:16])
                nxt[i] = int(np.argmax(lg))
        return self.follow(prompts, streams, seen, nxt, steps)

    def follow(self, prompts, streams, seen, nxt, steps: int):
        """`steps` greedy decode steps of every prompt together after its prefill, each step's logit digests."""
        for step in range(steps):
            self.decode(
                [(nxt[i], len(p) + step, s, True) for i, (p, s) in enumerate(zip(prompts, streams, strict=True))]
            )
            for i in range(len(prompts)):
                lg = self.logits(i)
                seen[i].append(hashlib.sha256(lg.tobytes()).hexdigest()[:16])
                nxt[i] = int(np.argmax(lg))
        return seen

    def run(self, prompts, streams, grouped: bool, steps: int, chunk: int | None = None):
        """Logit digests per prompt: prefill (alone, or all in one decode), then `steps` greedy steps together."""
        self.clear()
        seen = [[] for _ in prompts]
        nxt = []
        if grouped:
            entries, last = [], []
            for p, s in zip(prompts, streams, strict=True):
                for k, t in enumerate(p):
                    entries.append((t, k, s, k == len(p) - 1))
                last.append(len(entries) - 1)
            self.decode(entries)
            for i in range(len(prompts)):
                lg = self.logits(last[i])
                seen[i].append(hashlib.sha256(lg.tobytes()).hexdigest()[:16])
                nxt.append(int(np.argmax(lg)))
        else:
            for i, (p, s) in enumerate(zip(prompts, streams, strict=True)):
                size = chunk or self.n_batch
                for start in range(0, len(p), size):
                    c = p[start : start + size]
                    self.decode([(t, start + k, s, start + k == len(p) - 1) for k, t in enumerate(c)])
                lg = self.logits(-1)
                seen[i].append(hashlib.sha256(lg.tobytes()).hexdigest()[:16])
                nxt.append(int(np.argmax(lg)))
        return self.follow(prompts, streams, seen, nxt, steps)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mixes", type=int, default=30)
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--n-ubatch", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    cpp = llama_engine.llama_module()
    engine = llama_engine.LlamaEngine(threads=2)
    blob = Digest("sha256", hashlib.sha256(b"probe").digest())
    loaded = engine.model(blob, lambda: MODEL)
    ctx = Ctx(loaded, cpp, args.streams, 1024, 512, args.n_ubatch)
    rng = random.Random(args.seed)

    def prompt(n):
        return [1] + [rng.randrange(100, loaded.n_vocab) for _ in range(n - 1)]

    # Solo reference for a prompt: stream 0, nothing else in the context, prefilled in chunks of n_batch.
    def solo(p):
        return ctx.run([p], [0], False, args.steps)[0]

    results: dict[str, list[bool]] = {}

    def note(kind, ok):
        results.setdefault(kind, []).append(ok)

    # 0. Chunked solo prefill: chunks of c tokens after position 0 vs one chunk.
    for c in (1, 2, 3, 4, 5, 8, 16, 32):
        for _ in range(6):
            p = prompt(rng.randrange(c + 2, 100))
            while len(p) % c == 1:
                p = p[:-1]
            note(f"solo prefill in chunks of {c}", ctx.run([p], [0], False, args.steps, chunk=c)[0] == solo(p))
    for mix in range(args.mixes):
        g = rng.randrange(2, args.streams + 1)
        base = rng.choice([1, 2, 3, 5, 17, 49, 50, 64])
        # (a) equal lengths
        ps = [prompt(base) for _ in range(g)]
        streams = sorted(rng.sample(range(args.streams), g))
        got = ctx.run(ps, streams, True, args.steps)
        note("equal lengths, grouped", all(got[i] == solo(ps[i]) for i in range(g)))
        # (b) different lengths
        lens = [rng.choice([1, 2, 3, 5, 17, 40, 49, 50, 64, 100]) for _ in range(g)]
        ps = [prompt(n) for n in lens]
        got = ctx.run(ps, streams, True, args.steps)
        oks = [got[i] == solo(ps[i]) for i in range(g)]
        note("different lengths, grouped", all(oks))
        if not all(oks):
            print(f"  mix {mix}: lengths {lens} streams {streams}: exact {oks}", flush=True)
    # (c) different lengths by rounds of equal chunks of >= 2 tokens
    for mix in range(args.mixes):
        g = rng.randrange(2, args.streams + 1)
        lens = [rng.choice([1, 2, 3, 4, 5, 17, 40, 49, 50, 51, 64, 100, 300]) for _ in range(g)]
        ps = [prompt(n) for n in lens]
        streams = list(range(g)) if mix % 2 else sorted(rng.sample(range(args.streams), g))
        got = ctx.run_plan(ps, streams, plan_rounds(lens), args.steps)
        oks = [got[i] == solo(ps[i]) for i in range(g)]
        note("different lengths, rounds of equal chunks >= 2", all(oks))
        if not all(oks):
            print(f"  plan mix {mix}: lengths {lens} rounds {plan_rounds(lens)}: exact {oks}", flush=True)
    # (d) one-token first chunk at position 0, then the rest
    for _ in range(4):
        p = prompt(rng.randrange(3, 60))
        got = ctx.run_plan([p], [0], [[(0, 0, 1)], [(0, 1, len(p))]], args.steps)[0]
        note("first chunk of 1 token then the rest", got == solo(p))
    # timing: 16 (or streams) prompts of 50 tokens, alone vs grouped
    import time

    ps = [prompt(50) for _ in range(args.streams)]
    for label, fn in (
        ("alone", lambda: ctx.run(ps, list(range(len(ps))), False, 0)),
        ("grouped", lambda: ctx.run(ps, list(range(len(ps))), True, 0)),
    ):
        t = time.perf_counter()
        for _ in range(3):
            fn()
        print(f"prefill {len(ps)} x 50 tokens {label}: {(time.perf_counter() - t) / 3 * 1000:.0f} ms")
    for kind, oks in results.items():
        print(f"{kind}: {sum(oks)}/{len(oks)} exact")
    return 0


def plan_rounds(lengths):
    return llama_engine.prefill_rounds(lengths, 512)


if __name__ == "__main__":
    sys.exit(main())
