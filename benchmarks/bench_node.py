"""The node under load on loopback, against plain servers, in one run.

(a) plain: FastAPI + uvicorn calling onnxruntime, no verification (benchmarks/plain_server.py fastapi)
(a') bare: a bare ASGI function + msgspec on uvicorn calling onnxruntime: the server and request path the node's
     /v1/infer uses, so (b)/(a') is veriml's own cost apart from the framework's (plain_server.py asgi)
(b) node:  a veriml node, POST /v1/infer at level `signed` (validate, run, digest, sign, durable log append under
     a signed checkpoint, inclusion proof in the answer)
(c) quorum: the Python client with `quorum:3` on a 3-node devnet, against the same client at `signed`

(a), (a') and (b) are driven by wrk (Debian package `wrk`) for a fixed time with each number of connections,
interleaved (a, a', b at 8 connections, then at 64); (c) is latency of sequential calls from one client, with
the client process's CPU time per call (time.process_time over the calls, all its threads).
Bounded in time; every server is stopped at the end.

Run: .venv/bin/python benchmarks/bench_node.py [--seconds 10] [--connections 8,64] [--calls 200] [--only quorum]
(`--only quorum` runs (c) alone, without wrk)
"""

from __future__ import annotations

import argparse
import json
import os
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


def process_cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) the processes have used so far (Linux /proc; 0 elsewhere)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def latencies(fn, calls: int, nodes: list[int] = ()) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """p50 and p99 wall time of `calls` sequential calls, the client process's CPU time per call (every thread of
    this process: the calling one and the quorum's) and the CPU time of the node processes `nodes` per call."""
    samples = []
    cpu, node_cpu = time.process_time(), process_cpu(list(nodes))
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    cpu, node_cpu = time.process_time() - cpu, process_cpu(list(nodes)) - node_cpu
    samples.sort()
    return {"p50_ms": statistics.median(samples), "p99_ms": samples[max(0, int(len(samples) * 0.99) - 1)],
            "cpu_ms": cpu * 1000 / calls, "node_cpu_ms": node_cpu * 1000 / calls, "samples": samples}  # fmt: skip


def plain_server(kind: str, model: Path, port: int) -> subprocess.Popen[bytes]:
    script = str(Path(__file__).with_name("plain_server.py"))
    server = subprocess.Popen([sys.executable, script, str(model), str(port), kind])
    wait_up(f"http://127.0.0.1:{port}/infer")
    return server


def quorum_part(model: Path, publisher: SigningKey, root: Path, calls: int) -> tuple[dict, dict]:
    """(c): the client at `signed` (one node) and at `quorum:3` on three nodes on this machine's two cores,
    measured in interleaved blocks of 20 calls so that noise from the machine falls on both alike."""
    network = devnet.up(root / "devnet", 3)
    try:
        with Client(network.urls, admin_token=network.admin_token) as client:
            client.publish(model, "bench/mlp", publisher, node=network.urls[0])
            for url in network.urls[1:]:
                client.pin("bench/mlp", url)
            x = {"x": np.asarray(X, np.float32)}
            for _ in range(20):  # warm up: connections, sessions, the client's threads
                client.infer("bench/mlp", x)
                client.infer("bench/mlp", x, verify="quorum:3")
            block, pids = 20, [node.pid for node in network.nodes]
            runs: dict[str, list[dict[str, float]]] = {"signed": [], "quorum": []}
            for _ in range(max(1, calls // block)):
                runs["signed"].append(latencies(lambda: client.infer("bench/mlp", x), block, pids))
                runs["quorum"].append(latencies(lambda: client.infer("bench/mlp", x, verify="quorum:3"), block, pids))
    finally:
        devnet.down(root / "devnet")
    signed, quorum = (merged(runs[kind]) for kind in ("signed", "quorum"))
    return signed, quorum


def merged(blocks: list[dict[str, float]]) -> dict[str, float]:
    samples = sorted(s for b in blocks for s in b["samples"])
    return {"p50_ms": statistics.median(samples), "p99_ms": samples[max(0, int(len(samples) * 0.99) - 1)],
            "cpu_ms": statistics.fmean(b["cpu_ms"] for b in blocks), "calls": len(samples),
            "node_cpu_ms": statistics.fmean(b["node_cpu_ms"] for b in blocks)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", default="8,64", help="comma-separated wrk connection counts")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--only", choices=["quorum"], help="run only part (c), the client's quorum:3 vs signed")
    args = parser.parse_args()
    connections = [int(c) for c in args.connections.split(",")] if args.only is None else []
    if connections and shutil.which("wrk") is None:
        sys.exit("bench_node needs wrk: apt-get install wrk")
    rows: dict[tuple[str, int], dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = examples.save(examples.mlp((16, 32, 8)), root / "mlp.onnx")
        publisher = SigningKey.generate("bench")
        if connections:
            rows = server_part(model, publisher, root, connections, args.seconds)
        signed, quorum = quorum_part(model, publisher, root, args.calls)
    if connections:
        print(f"# veriml node benchmark: MLP 16-32-8, wrk -t1 -d{args.seconds}s on 127.0.0.1\n")
        print("| path | connections | requests/s | p50 ms | p99 ms |")
        print("|---|---|---|---|---|")
        labels = {"fastapi": "(a) plain FastAPI + onnxruntime", "asgi": "(a') bare ASGI + msgspec + onnxruntime",
                  "node": "(b) veriml node, level signed"}  # fmt: skip
        for conns in connections:
            for kind, label in labels.items():
                row = rows[kind, conns]
                print(f"| {label} | {conns} | {row['rps']:,.0f} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} |")
        print()
        for conns in connections:
            node, fastapi, bare = rows["node", conns], rows["fastapi", conns], rows["asgi", conns]
            print(f"{conns} connections: (b)/(a) requests/s {node['rps'] / fastapi['rps']:.2f}x, p50 overhead "
                  f"{node['p50_ms'] - fastapi['p50_ms']:+.2f} ms; (b)/(a') {node['rps'] / bare['rps']:.2f}x, p50 "
                  f"overhead {node['p50_ms'] - bare['p50_ms']:+.2f} ms")  # fmt: skip
        print()
    print(f"| client, sequential ({signed['calls']} calls each, interleaved) | p50 ms | p99 ms | client CPU ms/call "
          "| nodes' CPU ms/call |")  # fmt: skip
    print("|---|---|---|---|---|")
    for label, row in (("signed (one node)", signed), ("quorum:3 (three nodes in parallel)", quorum)):
        cells = (row["p50_ms"], row["p99_ms"], row["cpu_ms"], row["node_cpu_ms"])
        print(f"| {label} | " + " | ".join(f"{cell:.2f}" for cell in cells) + " |")
    # What CPU alone allows (the nodes' CPU includes their background work): a signed call is serial, client then
    # node then client; a quorum's three nodes and the client share this machine's two cores.
    serial, shared = signed["cpu_ms"] + signed["node_cpu_ms"], (quorum["cpu_ms"] + quorum["node_cpu_ms"]) / 2
    print(f"\nCPU bound: signed {serial:.2f} ms (client + node), quorum:3 {shared:.2f} ms (client + nodes over two "
          f"cores): {shared / serial:.2f}x")  # fmt: skip
    print(f"\n(c) quorum:3 / signed p50 latency: {quorum['p50_ms'] / signed['p50_ms']:.2f}x")


def server_part(
    model: Path, publisher: SigningKey, root: Path, connections: list[int], seconds: int
) -> dict[tuple[str, int], dict[str, float]]:
    """(a), (a') and (b): one server process each, all up at once, driven one after another per connection count."""
    rows: dict[tuple[str, int], dict[str, float]] = {}
    ports = {kind: devnet.free_port() for kind in ("fastapi", "asgi")}
    plains = [plain_server(kind, model, port) for kind, port in ports.items()]
    single = devnet.up(root / "single", 1)
    try:
        with Client(single.urls, admin_token=single.admin_token) as client:
            client.publish(model, "bench/mlp", publisher)
        plain_body = {"inputs": {"x": X}}
        node_body = {"model": "bench/mlp", "inputs": {"x": X}}
        for conns in connections:
            for kind, port in ports.items():
                rows[kind, conns] = wrk(f"http://127.0.0.1:{port}/infer", plain_body, seconds, conns, root)
            rows["node", conns] = wrk(f"{single.urls[0]}/v1/infer", node_body, seconds, conns, root)
    finally:
        for plain in plains:
            plain.terminate()
            plain.wait(10)
        devnet.down(root / "single")
    return rows


if __name__ == "__main__":
    main()
