"""On a chain the registered auditors are the nodes in the on-chain registry: a node registered there (and
answering at its endpoint with its registered key) gets an auditable request's data; a key that is not is
refused, with no static peer list involved."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import numpy as np

from tests.adversarial.audit_support import attestations, infer, info, publish_mlp, wait_audited, wait_checkpoint
from veriml import devnet
from veriml.identity import SigningKey, VerifyingKey
from veriml.node.auditor_auth import sign_request
from veriml.service import Home


def test_auditor_registered_on_chain_gets_data_and_a_stranger_does_not(tmp_path):
    network = devnet.up(tmp_path / "net", 2, checkpoint_interval=0.3, audit_fraction=1.0, chain="anvil",
                        anchor_interval=1.0)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not all(info(url)["peers"] for url in network.urls):  # discovered from the registry
            assert time.monotonic() < deadline, "nodes did not find each other on chain"
            time.sleep(0.3)
        for node in network.nodes:  # no static peer list: the registry is the only source of peers
            assert "peers = []" in Path(node.home).parent.joinpath("node.toml").read_text()
        publish_mlp(network, tmp_path)
        index, salt = infer(network.urls[1], np.full((1, 16), 0.5, np.float32))
        wait_checkpoint(network.urls[1], index + 1)
        serving = VerifyingKey.parse(info(network.urls[1])["node"])
        path = f"/v1/log/entries/{index}"
        registered = Home(Path(network.nodes[0].home)).node_key()
        entry = httpx.get(network.urls[1] + path, headers=sign_request(registered, "GET", path, serving)).json()
        assert entry["data"] == "disclosed" and entry["salt"] == salt
        stranger = SigningKey.generate("mallory")
        refused = httpx.get(network.urls[1] + path, headers=sign_request(stranger, "GET", path, serving))
        assert refused.status_code == 403 and "not a registered peer" in refused.json()["detail"]
        assert salt not in refused.text
        # And the registered node's own auditor re-executed the entry.
        wait_audited(network.urls[:1], info(network.urls[1])["log_origin"], index + 1)
        found = [a for a in attestations(network.urls[0], info(network.urls[1])["node"]) if a["log_index"] == index]
        assert [a["verdict"] for a in found] == ["agree"]
    finally:
        devnet.down(tmp_path / "net")
