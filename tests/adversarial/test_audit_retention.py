"""Retention (issue 11): after the node's window an auditable request's inputs, outputs and salt are deleted from
its files, and the log, its proofs and every bundle the client holds verify exactly as before."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import numpy as np

from tests.adversarial.audit_support import info, publish_mlp
from veriml import devnet
from veriml.client import Client
from veriml.identity import VerifyingKey
from veriml.receipts import ReceiptLeaf, parse_signed_receipt
from veriml.service import Home
from veriml.tlog import Log, TlogProof, TrustPolicy
from veriml.verify import verify_bundle

RETENTION = 3.0


def test_deleted_after_retention_window_everything_still_verifies(tmp_path, monkeypatch):
    monkeypatch.setenv("VERIML_NODE_AUDIT_RETENTION", str(RETENTION))
    network = devnet.up(tmp_path / "net", 2, checkpoint_interval=0.3, audit_fraction=1.0)
    try:
        publish_mlp(network, tmp_path)
        rng = np.random.default_rng(5)
        with Client(network.urls) as client:
            bundles = [client.infer("alice/mlp", {"x": rng.standard_normal((1, 16)).astype(np.float32)},
                                    verify="logged") for _ in range(4)]  # fmt: skip
        served_by = {b.receipt.body.node.vkey for b in bundles}
        witnesses = [info(url)["witness"] for url in network.urls]
        for bundle in bundles:
            assert verify_bundle(bundle, level="logged", trusted_witnesses=witnesses, witness_quorum=1).verified
        url = next(u for u in network.urls if info(u)["node"] in served_by)
        node = network.nodes[network.urls.index(url)]
        salts = [b.salt.hex() for b in bundles if b.receipt.body.node.vkey == info(url)["node"]]
        checkpoint_before = httpx.get(f"{url}/checkpoint").text.splitlines()[:3]
        assert info(url)["audit"]["retention"] == RETENTION
        time.sleep(RETENTION + 2)
        size = info(url)["log_size"]
        key = VerifyingKey.parse(info(url)["node"])
        for index in range(size):
            entry = httpx.get(f"{url}/v1/log/entries/{index}").json()
            assert entry["data"] == "deleted" and "salt" not in entry
            receipt = parse_signed_receipt(entry["receipt"])
            TlogProof.parse(entry["proof"]).verify(ReceiptLeaf.of(receipt).to_bytes(), TrustPolicy(key))
            gone = httpx.get(f"{url}/v1/log/entries/{index}/bundle", headers={"X-Veriml-Salt": salts[0]})
            assert gone.status_code == 404 and "retention window" in gone.json()["detail"]
        # Same history: the checkpoint's size and root are unchanged, and every held bundle still verifies.
        assert httpx.get(f"{url}/checkpoint").text.splitlines()[:3] == checkpoint_before
        for bundle in bundles:
            assert verify_bundle(bundle, level="logged", trusted_witnesses=witnesses, witness_quorum=1).verified
        # Deleted from the files, not only from the answers.
        for name in ("log.sqlite", "log.sqlite-wal"):
            file = Path(node.home, "log", name)
            if file.exists():
                content = file.read_bytes()
                assert not any(salt.encode() in content for salt in salts), name
        devnet.stop_pid(node.pid, config=str(Path(node.home).parent / "node.toml"))
        with Log(Path(node.home, "log", "log.sqlite"), Home(Path(node.home)).node_key()) as log:
            log.integrate()
            assert log.verify_integrity() == log.sequenced_size == size
    finally:
        devnet.down(tmp_path / "net")
