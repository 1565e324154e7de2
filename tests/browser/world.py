"""A small network worth looking at, shared by the browser tests and scripts/screenshots.py: three real node
processes (the third a Byzantine node from tests/integration that perturbs its outputs), a model whose description
is hostile HTML, a language-model-free set of entries, cosigned checkpoints, a quorum bundle from the two honest
nodes, and audit evidence against the Byzantine node."""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

from veriml import devnet, examples
from veriml.client import Client
from veriml.identity import SigningKey
from veriml.receipts import Bundle

BYZANTINE = Path(__file__).parents[1] / "integration" / "veriml_byzantine_node.py"
HOSTILE = (
    '<script>window.__pwned = 1</script><img src="x" onerror="window.__pwned = 2">'
    "<b>bold</b> & a model that says it is <i>safe</i>"
)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@dataclass
class World:
    net: devnet.Devnet
    publisher: SigningKey
    bundle: Bundle  # logged, cosigned, by node 0, public
    quorum: Bundle  # quorum:2 from the two honest nodes
    private_index: int  # an auditable entry at node 0 whose data must not show
    private_bundle: Bundle
    bundle_index: int
    witnesses: list[str]  # the witness keys of nodes 1 and 2 (cosigners of node 0's checkpoints)
    infos: list[dict]

    @property
    def url(self) -> str:
        return self.net.urls[0]


def x(seed: int) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(seed).standard_normal((1, 16)).astype(np.float32)}


def build(root: Path) -> World:
    net = devnet.up(root, 3, checkpoint_interval=0.3, audit_fraction=1.0,
                    commands={2: [sys.executable, str(BYZANTINE)]})  # fmt: skip
    publisher = SigningKey.generate("alice")
    model = examples.save(examples.mlp(), Path(tempfile.mkdtemp(prefix="veriml-world-")) / "mlp.onnx")
    with Client(net.urls, admin_token=net.admin_token) as client:
        client.publish(model, "alice/mlp", publisher, description="A 16-32-8 MLP for the demo.", license="Apache-2.0",
                       node=net.urls[0])  # fmt: skip
        mallory = SigningKey.generate("mallory")
        client.publish(model, "mallory/xss", mallory, description=HOSTILE, license="<i>MIT</i>", node=net.urls[0])
    with Client([net.urls[0]]) as first:
        for seed in range(3):
            first.infer("alice/mlp", x(seed), privacy="public")
        private_bundle = first.infer("alice/mlp", x(50), privacy="auditable")
    with Client(net.urls[:2]) as first_then_witness:  # a logged answer needs another node known to witness
        bundle = first_then_witness.infer("alice/mlp", x(99), verify="logged", privacy="public")
    with Client(net.urls[:2]) as honest:
        quorum = honest.infer("alice/mlp", x(7), verify="quorum:2", logged=True, privacy="public")
    with Client([net.urls[2]]) as liar:  # the Byzantine node's answers: audit finds them wrong
        for seed in range(3):
            liar.infer("alice/mlp", x(100 + seed), privacy="public")
    infos = [httpx.get(f"{url}/v1/info", timeout=10).json() for url in net.urls]
    private_index = _index_of(net.urls[0], private_bundle)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if httpx.get(f"{net.urls[0]}/v1/evidence", timeout=10).json()["evidence"]:
            break
        time.sleep(0.3)
    return World(net, publisher, bundle, quorum, private_index, private_bundle, _index_of(net.urls[0], bundle),
                 [infos[1]["witness"], infos[2]["witness"]], infos)  # fmt: skip


def _index_of(url: str, bundle: Bundle) -> int:
    size = httpx.get(f"{url}/v1/info", timeout=10).json()["log_size"]
    for index in range(size):
        entry = httpx.get(f"{url}/v1/log/entries/{index}", timeout=10).json()
        if entry["receipt"]["signature"] == bundle.receipt.to_json()["signature"]:
            return index
    raise LookupError("the receipt is not in the log")


def launch(playwright, user_data_dir: Path):  # type: ignore[no-untyped-def]
    """Debian's Chromium, headless, with a fresh profile and no background traffic."""
    return playwright.chromium.launch_persistent_context(
        str(user_data_dir), executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
        viewport={"width": 1280, "height": 900},
    )  # fmt: skip
