"""A peer that drips a model's bytes (each byte inside any read timeout) used to hold whoever fetched the model
from it for as long as the blob lasted: a replication a caller waits for, or an auditor's worker fetching the model
to re-execute. A peer sending a blob must now keep up an average rate after a grace period (veriml.bounded_get,
STREAM_GRACE and STREAM_MIN_RATE); a slower one is given up, and nothing of what it sent is kept."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.adversarial.audit_support import publish_mlp
from veriml import devnet

DRIPPING = Path(__file__).with_name("blob_dripping_node.py")
IMPATIENT = Path(__file__).with_name("impatient_fetcher_node.py")


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    root = tmp_path_factory.mktemp("drippingnet")
    network = devnet.up(root, 2, checkpoint_interval=0.3, audit_fraction=0.0,
                        commands={0: [sys.executable, str(DRIPPING)], 1: [sys.executable, str(IMPATIENT)]})  # fmt: skip
    publish_mlp(network, root)  # held by the dripping node 0 only
    yield network
    devnet.down(root)


def test_a_peer_dripping_a_model_is_given_up_and_nothing_it_sent_is_kept(net):
    blob = httpx.get(f"{net.urls[0]}/v1/models/alice/mlp", timeout=10).json()["body"]["blob"]
    x = np.zeros((1, 16), np.float32).tolist()
    started = time.monotonic()
    # The model's 3,464 bytes at 20 bytes a second would take about 3 minutes.
    answer = httpx.post(f"{net.urls[1]}/v1/infer", json={"model": "alice/mlp", "inputs": {"x": x}}, timeout=60)
    elapsed = time.monotonic() - started
    assert answer.status_code == 503, answer.text
    problem = answer.json()
    assert problem["type"].endswith("/unavailable")
    assert net.urls[0] in problem["detail"] and "bytes a second" in problem["detail"], problem
    assert elapsed < 10, f"gave up only after {elapsed:.1f} s"
    assert httpx.get(f"{net.urls[1]}/v1/blobs/{blob}", timeout=10).status_code == 404
    # What the dripping peer sent is let go, not left half-written: the fetch's next byte ends it.
    partial = Path(net.nodes[1].home, "hub", "blobs", "tmp")
    deadline = time.monotonic() + 5
    while any(partial.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(partial.iterdir())
