"""The explorer's pages on a log of 10^6 entries: every page must render in under 200 ms (pagination, no scans).

The log is built fast with the tlog's batch append: one real inference gives a signed receipt and what the node keeps
beside it, and that entry is appended again and again (a Merkle log takes duplicate leaves; every entry's result
page and proof verify as for a distinct one). The pages are then served by a real node app (FastAPI, in process)
and each is fetched `--repeat` times; the table gives the median and the worst.

Usage: python benchmarks/bench_explorer.py [--entries 1000000] [--repeat 20]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from veriml import examples
from veriml.identity import SigningKey
from veriml.node.app import create_app
from veriml.node.config import NodeConfig
from veriml.node.node import Node
from veriml.service import Home, Service
from veriml.tlog import Log

BATCH = 4096


def build(home_dir: Path, entries: int) -> float:
    home = Home(home_dir)
    model = examples.save(examples.mlp(), home_dir.parent / "mlp.onnx")
    with Service(home) as service:
        service.publish(model, name="bench/mlp", publisher=SigningKey.generate("bench"), description="an MLP")
        service.infer_logged("bench/mlp", {"x": np.ones((1, 16), np.float32)}, privacy="public")
        leaf, extra = service.log.entry(0)
    start = time.perf_counter()
    with Log(home.log_path, home.node_key(), max_batch=BATCH) as log:
        done = log.sequenced_size
        while done < entries:
            count = min(BATCH, entries - done)
            log.append_batch([(leaf, extra)] * count)
            done += count
        log.integrate()
        log.sign_checkpoint()
    return time.perf_counter() - start


def measure(client: TestClient, path: str, repeat: int) -> tuple[float, float, int]:
    times = []
    status = 0
    for _ in range(repeat):
        start = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - start) * 1000)
        status = response.status_code
    return statistics.median(times), max(times), status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    machine = f"{platform.machine()}, Python {platform.python_version()}, {os.cpu_count()} cores"
    print(f"# veriml explorer benchmark: {machine}\n")
    with tempfile.TemporaryDirectory(prefix="veriml-bench-explorer-") as tmp:
        home_dir = Path(tmp) / "home"
        built = build(home_dir, args.entries)
        print(f"built a log of {args.entries:,} entries in {built:.1f} s (batch append, integrated, checkpoint signed)")
        print()
        node = Node(NodeConfig(home=home_dir, checkpoint_interval=3600.0, audit_fraction=0.0))
        last = args.entries - 1
        pages = [
            "/",
            "/models",
            "/models?q=mlp",
            "/models/bench/mlp",
            "/models/bench/mlp/v/1",
            "/log",
            f"/log?page={args.entries // 25 // 2}",
            f"/log?page={(args.entries - 1) // 25}",
            "/results/0",
            f"/results/{last}",
            f"/log/inclusion?index={args.entries // 3}",
            f"/log/consistency?old={args.entries // 3}&new={args.entries}",
            "/evidence",
            "/verify",
        ]
        try:
            with TestClient(create_app(node)) as client:
                print("| page | median ms | worst ms | status |")
                print("|---|---|---|---|")
                worst_median = 0.0
                for path in pages:
                    median, worst, status = measure(client, path, args.repeat)
                    worst_median = max(worst_median, median)
                    print(f"| `{path}` | {median:.1f} | {worst:.1f} | {status} |")
                print(f"\nslowest median: {worst_median:.1f} ms (goal: < 200 ms)")
        finally:
            node.stop()


if __name__ == "__main__":
    main()
