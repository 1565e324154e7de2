"""The explorer of a node on a chain (anvil): the registry's view of the nodes (stake, state, anchors) on the Network
page, and on a result's page the on-chain anchor that covers it once the node has anchored."""

from __future__ import annotations

import re
import time

import httpx
import numpy as np
import pytest

from veriml import devnet, examples
from veriml.client import Client
from veriml.identity import SigningKey


def wait_for(condition, what: str, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)
    return value


@pytest.fixture(scope="module")
def chain_net(tmp_path_factory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("explorer-chain")
    network = devnet.up(root, 2, checkpoint_interval=0.3, chain="anvil", anchor_interval=0.5)
    yield network
    devnet.down(root)


def test_network_and_result_pages_show_the_chain_registry_and_the_anchor(chain_net, tmp_path):
    urls = chain_net.urls
    wait_for(lambda: all(len(httpx.get(f"{u}/v1/info").json()["peers"]) == 1 for u in urls), "peers from the chain")
    model = examples.save(examples.mlp(), tmp_path / "mlp.onnx")
    with Client(urls, admin_token=chain_net.admin_token) as client:
        client.publish(model, "alice/mlp", SigningKey.generate("alice"), node=urls[0])
        client.infer("alice/mlp", {"x": np.ones((1, 16), np.float32)}, verify="logged")
    page = wait_for(lambda: (t := httpx.get(f"{urls[0]}/results/0").text) and "covered</span>" in t and t,
                    "the anchor covering entry 0")  # fmt: skip
    anchor = re.search(r"anchored tree size (\d+), root <span class=\"mono\">([A-Za-z0-9+/=]+)</span>", page)
    assert anchor is not None and int(anchor.group(1)) >= 1
    network = httpx.get(f"{urls[0]}/").text
    assert "Chain registry" in network and re.search(
        r"This node anchors from account <span class=\"mono\">0x[0-9a-fA-F]{40}<", network
    )
    info = [httpx.get(f"{u}/v1/info").json() for u in urls]
    for node in info:  # both registered nodes are listed, active, with their stake
        row = network[network.index(node["log_origin"] + "</td>") :][:600]
        assert "active" in row and "0.1 ETH" in row
