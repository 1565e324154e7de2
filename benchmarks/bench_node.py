"""The node under load on loopback, against a plain server of the same framework, in one run.

(a) plain: FastAPI + uvicorn calling onnxruntime, no verification (benchmarks/plain_server.py)
(b) node:  a veriml node, POST /v1/infer at level `signed` (validate, run, digest, sign, durable log append)
(c) quorum: the Python client with `quorum:3` on a 3-node devnet, against the same client at `signed`

(a) and (b) are driven by wrk (Debian package `wrk`) for a fixed time with a fixed number of connections;
(c) is latency of sequential calls from one client. Bounded in time; every server is stopped at the end.

Run: .venv/bin/python benchmarks/bench_node.py [--seconds 10] [--connections 8] [--calls 200]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from veriml import devnet, examples
from veriml.client import Client
from veriml.identity import SigningKey

X = [[round(float(v), 4) for v in np.random.default_rng(0).standard_normal(16)]]


def wrk(url: str, body: dict, seconds: int, connections: int, root: Path) -> dict[str, float]:
    script = root / "post.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(json.dumps(body))}\n"
    )
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, check=True, timeout=seconds + 30,
    ).stdout  # fmt: skip
    if "Non-2xx" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    latency = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M))
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50_ms": to_ms(latency["50"]), "p99_ms": to_ms(latency["99"])}  # fmt: skip


def to_ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def wait_up(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def latencies(fn, calls: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {"p50_ms": statistics.median(samples), "p99_ms": samples[int(len(samples) * 0.99) - 1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench_node needs wrk: apt-get install wrk")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = examples.save(examples.mlp((16, 32, 8)), root / "mlp.onnx")
        publisher = SigningKey.generate("bench")
        port = devnet.free_port()
        # (a) and (b): one server process each, nothing else running.
        plain = subprocess.Popen([sys.executable, str(Path(__file__).with_name("plain_server.py")), str(model),
                                  str(port)])  # fmt: skip
        try:
            wait_up(f"http://127.0.0.1:{port}/docs")
            a = wrk(f"http://127.0.0.1:{port}/infer", {"inputs": {"x": X}}, args.seconds, args.connections, root)
        finally:
            plain.terminate()
            plain.wait(10)
        single = devnet.up(root / "single", 1)
        try:
            with Client(single.urls, admin_token=single.admin_token) as client:
                client.publish(model, "bench/mlp", publisher)
            b = wrk(f"{single.urls[0]}/v1/infer", {"model": "bench/mlp", "inputs": {"x": X}}, args.seconds,
                    args.connections, root)  # fmt: skip
        finally:
            devnet.down(root / "single")
        # (c): three nodes on this machine's two cores.
        network = devnet.up(root / "devnet", 3)
        try:
            with Client(network.urls, admin_token=network.admin_token) as client:
                client.publish(model, "bench/mlp", publisher, node=network.urls[0])
                for url in network.urls[1:]:
                    client.pin("bench/mlp", url)
                x = {"x": np.asarray(X, np.float32)}
                signed = latencies(lambda: client.infer("bench/mlp", x), args.calls)
                quorum = latencies(lambda: client.infer("bench/mlp", x, verify="quorum:3"), args.calls)
        finally:
            devnet.down(root / "devnet")
    print(f"# veriml node benchmark: MLP 16-32-8, wrk -t1 -c{args.connections} -d{args.seconds}s on 127.0.0.1\n")
    print("| path | requests/s | p50 ms | p99 ms |")
    print("|---|---|---|---|")
    print(f"| (a) plain FastAPI + onnxruntime | {a['rps']:,.0f} | {a['p50_ms']:.2f} | {a['p99_ms']:.2f} |")
    print(f"| (b) veriml node, level signed | {b['rps']:,.0f} | {b['p50_ms']:.2f} | {b['p99_ms']:.2f} |")
    print(f"\n(b)/(a) requests/s: {b['rps'] / a['rps']:.2f}x; p50 overhead {b['p50_ms'] - a['p50_ms']:.2f} ms\n")
    print(f"| client, sequential ({args.calls} calls) | p50 ms | p99 ms |")
    print("|---|---|---|")
    print(f"| signed (one node) | {signed['p50_ms']:.2f} | {signed['p99_ms']:.2f} |")
    print(f"| quorum:3 (three nodes in parallel) | {quorum['p50_ms']:.2f} | {quorum['p99_ms']:.2f} |")
    print(f"\n(c) quorum:3 / signed p50 latency: {quorum['p50_ms'] / signed['p50_ms']:.2f}x")


if __name__ == "__main__":
    main()
