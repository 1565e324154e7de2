"""The transparency log against pymerkle (the Python peer), in one run.

1. Durable appends per second with group commit, at batch sizes 1, 64 and 1024 (entries in flight at once):
   veriml `Log.submit` (sequenced and fsynced before the future resolves), then integration into the tree;
   pymerkle `SqliteTree.append_entries` with the same batches.
2. At N entries (default 10^6): inclusion-proof generation and verification, consistency-proof generation and
   verification, veriml `Log` (SQLite, proofs from stored subtree hashes) vs pymerkle `InmemoryTree` and
   `SqliteTree`.

Run: .venv/bin/python benchmarks/bench_tlog.py [--entries 1000000] [--seconds 2]   (needs `pip install pymerkle`)
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pymerkle

from veriml.identity import SigningKey
from veriml.tlog import Log, merkle

ENTRY = 160  # a receipt leaf
EXTRA = 700  # a signed receipt kept beside it


def entry(i: int) -> bytes:
    return i.to_bytes(8, "big") * (ENTRY // 8)


def rate(fn: Callable[[int], int], seconds: float) -> float:
    """Items per second of fn(start) -> items done, run repeatedly for `seconds`."""
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        done += fn(done)
    return done / (time.perf_counter() - start)


def per_op_us(fn: Callable[[int], object], samples: list[int], rounds: int = 5) -> float:
    results = []
    for _ in range(rounds):
        start = time.perf_counter()
        for value in samples:
            fn(value)
        results.append((time.perf_counter() - start) / len(samples) * 1e6)
    return statistics.median(results)


def veriml_rates(path: Path, batch: int, extra: bytes, seconds: float) -> tuple[float, float]:
    """(durable appends/s, integrated entries/s) for batches of `batch` entries with `extra` beside each."""
    with Log(path, SigningKey.generate("bench.example/log"), max_batch=batch) as log:

        def append(done: int) -> int:
            log.append_batch([(entry(done + i), extra) for i in range(batch)])
            return batch

        durable = rate(append, seconds)
        count = log.sequenced_size
        start = time.perf_counter()
        log.integrate()
        return durable, count / (time.perf_counter() - start)


def bench_appends(root: Path, seconds: float) -> None:
    print("Same entries (160 bytes) into both; veriml also writes every complete-subtree hash, so proofs need no")
    print("rehashing. Last column: veriml with a 700-byte signed receipt stored beside each entry, as a node does.\n")
    print("| batch | veriml durable appends/s | veriml integration /s | veriml durable + integrated /s "
          "| pymerkle SqliteTree appends/s | ratio | veriml with receipts, durable + integrated /s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for batch in (1, 64, 1024):
        durable, integration = veriml_rates(root / f"plain-{batch}.sqlite", batch, b"", seconds)
        combined = 1 / (1 / durable + 1 / integration)
        with_receipts = veriml_rates(root / f"receipts-{batch}.sqlite", batch, b"r" * EXTRA, seconds)
        combined_receipts = 1 / (1 / with_receipts[0] + 1 / with_receipts[1])
        tree = pymerkle.SqliteTree(str(root / f"pymerkle-{batch}.db"))

        def pymerkle_batch(done: int, tree: pymerkle.SqliteTree = tree, batch: int = batch) -> int:
            tree.append_entries([entry(done + i) for i in range(batch)])
            return batch

        peer = rate(pymerkle_batch, seconds)
        tree.close()
        cells = [f"{value:,.0f}" for value in (durable, integration, combined, peer)]
        print(f"| {batch} | {' | '.join(cells)} | {combined / peer:.2f}x | {combined_receipts:,.0f} |")


def bench_proofs(root: Path, count: int) -> None:
    start = time.perf_counter()
    log = Log(root / "big.sqlite", SigningKey.generate("bench.example/log"), max_batch=4096)
    for base in range(0, count, 4096):
        log.append_batch([(entry(i), b"") for i in range(base, min(base + 4096, count))])
    log.integrate()
    built = time.perf_counter() - start
    start = time.perf_counter()
    memory_tree = pymerkle.InmemoryTree()
    for i in range(count):
        memory_tree.append_entry(entry(i))
    built_memory = time.perf_counter() - start
    start = time.perf_counter()
    sqlite_tree = pymerkle.SqliteTree(str(root / "big-pymerkle.db"))
    sqlite_tree.append_entries([entry(i) for i in range(count)], chunksize=100_000)
    built_sqlite = time.perf_counter() - start
    print(f"\nbuilt {count:,} entries: veriml Log {built:.1f} s (durable, integrated); pymerkle InmemoryTree "
          f"{built_memory:.1f} s; pymerkle SqliteTree {built_sqlite:.1f} s\n")  # fmt: skip

    rng = random.Random(1)
    indices = [rng.randrange(count) for _ in range(2000)]
    olds = [rng.randrange(1, count) for _ in range(2000)]
    root_hash = log.root(count)
    ours_proofs = {i: log.inclusion_proof(i, count) for i in indices}
    leaf_hashes = {i: merkle.leaf_hash(entry(i)) for i in indices}
    theirs_proofs = {i: memory_tree.prove_inclusion(i + 1, count) for i in indices}
    their_root = memory_tree.get_root(count)
    assert their_root == root_hash, "pymerkle and veriml disagree on the root"
    old_roots = {m: log.root(m) for m in olds[:200]}
    ours_consistency = {m: log.consistency_proof(m, count) for m in olds[:200]}
    theirs_consistency = {m: memory_tree.prove_consistency(m, count) for m in olds[:200]}

    def ours_verify_inclusion(i: int) -> None:
        merkle.verify_inclusion(i, count, leaf_hashes[i], ours_proofs[i], root_hash)

    def theirs_verify_inclusion(i: int) -> None:
        pymerkle.verify_inclusion(memory_tree.get_leaf(i + 1), their_root, theirs_proofs[i])

    def ours_verify_consistency(m: int) -> None:
        merkle.verify_consistency(m, count, ours_consistency[m], old_roots[m], root_hash)

    def theirs_verify_consistency(m: int) -> None:
        pymerkle.verify_consistency(old_roots[m], their_root, theirs_consistency[m])

    rows = [
        ("inclusion proof: generate", lambda i: log.inclusion_proof(i, count),
         lambda i: memory_tree.prove_inclusion(i + 1, count), lambda i: sqlite_tree.prove_inclusion(i + 1, count),
         indices),
        ("inclusion proof: verify", ours_verify_inclusion, theirs_verify_inclusion, None, indices),
        ("consistency proof: generate", lambda m: log.consistency_proof(m, count),
         lambda m: memory_tree.prove_consistency(m, count), lambda m: sqlite_tree.prove_consistency(m, count),
         olds[:200]),
        ("consistency proof: verify", ours_verify_consistency, theirs_verify_consistency, None, olds[:200]),
    ]  # fmt: skip
    print(f"| at {count:,} entries | veriml µs | pymerkle InmemoryTree µs | pymerkle SqliteTree µs "
          "| speedup vs fastest peer |")  # fmt: skip
    print("|---|---|---|---|---|")
    for label, ours, theirs, theirs_sqlite, samples in rows:
        ours_us = per_op_us(ours, samples)
        theirs_us = per_op_us(theirs, samples)
        sqlite_us = per_op_us(theirs_sqlite, samples[:200], rounds=1) if theirs_sqlite else float("nan")
        fastest = min(theirs_us, sqlite_us) if theirs_sqlite else theirs_us
        sqlite_text = f"{sqlite_us:.1f}" if theirs_sqlite else "-"
        print(f"| {label} | {ours_us:.1f} | {theirs_us:.1f} | {sqlite_text} | {fastest / ours_us:.2f}x |")
    log.close()
    sqlite_tree.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    print(f"# veriml tlog benchmark: {platform.machine()}, Python {platform.python_version()}, pymerkle 7\n")
    with tempfile.TemporaryDirectory() as tmp:
        bench_appends(Path(tmp), args.seconds)
        bench_proofs(Path(tmp), args.entries)


if __name__ == "__main__":
    main()
