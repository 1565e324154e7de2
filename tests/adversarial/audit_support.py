"""Shared steps of the audit attack tests: publish, infer at one node, read what auditors recorded."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from veriml import examples
from veriml.client import Client
from veriml.devnet import Devnet, DevnetNode
from veriml.identity import SigningKey
from veriml.receipts import new_salt
from veriml.tlog import SignedCheckpoint


def info(url: str) -> dict[str, Any]:
    return httpx.get(f"{url}/v1/info", timeout=10).json()


def publish_mlp(network: Devnet, tmp: Path) -> Path:
    path = examples.save(examples.mlp(), tmp / "mlp.onnx")
    with Client(network.urls, admin_token=network.admin_token) as client:
        client.publish(path, "alice/mlp", SigningKey.generate("alice"), node=network.urls[0])
    return path


def infer(url: str, x: np.ndarray, privacy: str | None = None) -> tuple[int, str]:
    """Run alice/mlp at one node: (log index, the salt the client chose)."""
    salt = new_salt().hex()
    body: dict[str, Any] = {"model": "alice/mlp", "inputs": {"x": x.tolist()}, "salt": salt}
    if privacy is not None:
        body["privacy"] = privacy
    response = httpx.post(f"{url}/v1/infer", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["log_index"], salt


def wait_checkpoint(url: str, size: int, timeout: float = 20) -> int:
    deadline = time.monotonic() + timeout
    while True:
        found = SignedCheckpoint.parse(httpx.get(f"{url}/checkpoint", timeout=10).text).checkpoint.size
        if found >= size or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def wait_audited(auditors: list[str], origin: str, size: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if min(info(url)["audited"].get(origin, 0) for url in auditors) >= size:
            return
        time.sleep(0.3)
    raise AssertionError(f"auditors did not reach {size} entries of {origin} in {timeout} s")


def seed_of(node: DevnetNode) -> bytes:
    return bytes.fromhex(Path(node.home, "audit", "seed").read_text().strip())


def attestations(url: str, subject: str) -> list[dict[str, Any]]:
    found = httpx.get(f"{url}/v1/attestations", params={"limit": 1000}, timeout=10).json()["attestations"]
    return [a for a in found if a["subject"] == subject]


def refusals(url: str, subject: str) -> list[dict[str, Any]]:
    found = httpx.get(f"{url}/v1/evidence", params={"limit": 1000}, timeout=10).json()["refusals"]
    return [r for r in found if r["subject"] == subject]


def forks(url: str, subject: str) -> list[dict[str, Any]]:
    found = httpx.get(f"{url}/v1/evidence", params={"limit": 1000}, timeout=10).json()["forks"]
    return [f for f in found if f["subject"] == subject]
