"""The network with real node processes on 127.0.0.1: replication, quorum, witnessing, failover and faults."""

from __future__ import annotations

import hashlib
import os
import signal
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from veriml import devnet, examples
from veriml.client import Client, Disagreement
from veriml.client.client import PIN_RETRY_PAUSES
from veriml.codec import tensors_to_json
from veriml.errors import NotFound, Unavailable, VerificationFailed
from veriml.identity import SigningKey
from veriml.receipts import Bundle
from veriml.tlog import Log, SignedCheckpoint, TlogProof
from veriml.verify import verify_bundle

BYZANTINE = Path(__file__).with_name("veriml_byzantine_node.py")
X = {"x": np.random.default_rng(11).standard_normal((1, 16)).astype(np.float32)}


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    root = tmp_path_factory.mktemp("devnet")
    network = devnet.up(root, 3, checkpoint_interval=0.3)
    yield network
    devnet.down(root)


@pytest.fixture(scope="module")
def publisher():
    return SigningKey.generate("alice")


@pytest.fixture(scope="module")
def model(net, publisher, tmp_path_factory):
    path = examples.save(examples.mlp(), tmp_path_factory.mktemp("models") / "mlp.onnx")
    with Client(net.urls, admin_token=net.admin_token) as client:
        client.publish(path, "alice/mlp", publisher, node=net.urls[0])
    return path


def infos(net):
    return [httpx.get(f"{url}/v1/info", timeout=5).json() for url in net.urls]


def test_quorum_replicates_agrees_and_is_cosigned(net, model, publisher):
    with Client(net.urls) as client:
        bundle = client.infer("alice/mlp", X, verify="quorum:3", logged=True)
    assert len(bundle.attestations) == 2
    assert all("alice/mlp" in info["models"] for info in infos(net))  # replicated on demand
    serving = bundle.receipt.body.node.vkey
    witnesses = [info["witness"] for info in infos(net) if info["node"] != serving]
    report = verify_bundle(
        Bundle.from_bytes(bundle.to_bytes()),
        level="reexecuted",
        load_blob=lambda _digest: model.read_bytes(),
        trusted_publishers=[publisher.public.vkey],
        trusted_witnesses=witnesses,
        witness_quorum=2,
        agreeing_nodes=3,
    )
    assert report.consistent, report.failures()


def test_client_fails_over_past_a_dead_node(net, model):
    dead = f"http://127.0.0.1:{devnet.free_port()}"
    with Client([dead, net.urls[1]]) as client:
        bundle = client.infer("alice/mlp", X)
    assert verify_bundle(bundle).consistent


def test_checkpoints_and_tiles_are_served(net, model):
    with Client(net.urls) as client:
        client.infer("alice/mlp", X, verify="logged")
    for url in net.urls:
        checkpoint = SignedCheckpoint.parse(httpx.get(f"{url}/checkpoint").text)
        assert checkpoint.checkpoint.size >= 0
    text = httpx.get(f"{net.urls[0]}/checkpoint").text
    size = SignedCheckpoint.parse(text).checkpoint.size
    if size:
        tile = httpx.get(f"{net.urls[0]}/tile/0/000.p/{min(size, 255)}")
        assert tile.status_code == 200 and len(tile.content) == 32 * min(size, 255)


def test_a_peer_serving_a_corrupted_blob_is_refused(net, publisher, tmp_path):
    path = examples.save(examples.cnn(), tmp_path / "cnn.onnx")
    with Client(net.urls, admin_token=net.admin_token) as client:
        manifest = client.publish(path, "alice/cnn", publisher, node=net.urls[0])
        blob_file = (
            Path(net.nodes[0].home) / "hub" / "blobs" / "sha256" / manifest.body.blob.hex[:2] / manifest.body.blob.hex
        )
        good = blob_file.read_bytes()
        bad = bytearray(good)
        bad[len(bad) // 2] ^= 0xFF  # node0 now serves wrong bytes of the right length
        blob_file.write_bytes(bytes(bad))
        # node0 is the only source: node1 refuses its bytes and keeps nothing.
        with pytest.raises(Unavailable, match="hash"):
            client.pin("alice/cnn", net.urls[1])
        assert httpx.get(f"{net.urls[1]}/v1/blobs/{manifest.body.blob}").status_code == 404
        assert "served wrong bytes" in Path(net.nodes[1].log).read_text()
        # A good copy appears on node2; node1 now takes it (node0, which lied, is asked last).
        blob_file.write_bytes(good)
        client.pin("alice/cnn", net.urls[2])
        blob_file.write_bytes(bytes(bad))
        client.pin("alice/cnn", net.urls[1])
    served = httpx.get(f"{net.urls[1]}/v1/blobs/{manifest.body.blob}").content
    assert "sha256:" + hashlib.sha256(served).hexdigest() == str(manifest.body.blob)


def test_node_killed_mid_traffic_loses_nothing_acknowledged(net, model, tmp_path):
    acknowledged: list[Bundle] = []
    errors: list[Exception] = []
    stop = threading.Event()

    def traffic():
        with Client(net.urls) as client:
            for _ in range(300):
                if stop.is_set():
                    return
                try:
                    acknowledged.append(client.infer("alice/mlp", X))
                except Exception as exc:  # every call must succeed through failover
                    errors.append(exc)

    worker = threading.Thread(target=traffic)
    worker.start()
    time.sleep(0.5)
    os.kill(net.nodes[2].pid, signal.SIGKILL)
    worker.join(120)
    stop.set()
    assert errors == [] and len(acknowledged) > 0
    restarted = devnet.restart(net.root, 2)
    served_by_killed = [b for b in acknowledged if b.receipt.body.node.vkey == infos(restarted)[2]["node"]]
    home = Path(restarted.nodes[2].home)
    # Read the restarted node's log from its files: every receipt it acknowledged is there.
    from veriml.service import Home

    with Log(home / "log" / "log.sqlite", Home(home).node_key()) as log:
        stored = {log.entry(i)[1] for i in range(log.sequenced_size)}
        log.integrate()
        assert log.verify_integrity() == log.sequenced_size
    for bundle in served_by_killed:
        assert any(bundle.receipt.canonical in receipt for receipt in stored)


def test_byzantine_node_is_caught_by_quorum_every_time_and_by_audit_at_its_rate(tmp_path, publisher):
    fraction = 0.2
    network = devnet.up(tmp_path / "byz", 3, checkpoint_interval=0.5, audit_fraction=fraction,
                        commands={2: [sys.executable, str(BYZANTINE)]})  # fmt: skip
    try:
        path = examples.save(examples.mlp(), tmp_path / "mlp.onnx")
        wrong_accepted = disagreements = 0
        with Client(network.urls, admin_token=network.admin_token) as client:
            client.publish(path, "alice/mlp", publisher, node=network.urls[0])
            byzantine = httpx.get(f"{network.urls[2]}/v1/info").json()["node_id"]
            rng = np.random.default_rng(1)
            for _ in range(1000):
                x = {"x": rng.standard_normal((1, 16)).astype(np.float32)}
                try:
                    client.infer("alice/mlp", x, verify="quorum:3")
                    wrong_accepted += 1
                except Disagreement as exc:
                    disagreements += 1
                    assert network.urls[2] in exc.nodes and "disagree" in str(exc)
            # Alone, the Byzantine node's answer is validly signed; only re-execution shows it is wrong.
            with Client([network.urls[2]]) as alone:
                lie = alone.infer("alice/mlp", X)
            report = verify_bundle(lie, level="signed")
            assert report.consistent and lie.receipt.body.node.key_id == byzantine
            rerun = verify_bundle(lie, level="reexecuted", load_blob=lambda _d: path.read_bytes())
            assert rerun.check("reexec").status == "fail"
            # Any node re-executes a receipt on request, and signs what it found.
            body = {"receipt": lie.receipt.to_json(), "salt": lie.salt.hex(), "inputs": tensors_to_json(lie.inputs),
                    "outputs": tensors_to_json(lie.outputs)}  # fmt: skip
            attestation = httpx.post(f"{network.urls[0]}/v1/attest", json=body, timeout=30).json()
            assert attestation["body"]["verdict"] == "disagree"
        assert (wrong_accepted, disagreements) == (0, 1000)
        # Audit: each honest node re-executes about `fraction` of the Byzantine node's entries; every one of
        # those is a disagreement, kept as evidence.
        origin = httpx.get(f"{network.urls[2]}/v1/info").json()["log_origin"]
        size = SignedCheckpoint.parse(httpx.get(f"{network.urls[2]}/checkpoint").text).checkpoint.size
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            audited = [httpx.get(f"{url}/v1/info").json()["audited"].get(origin, 0) for url in network.urls[:2]]
            if min(audited) >= size:
                break
            time.sleep(0.5)
        for url in network.urls[:2]:
            evidence = httpx.get(f"{url}/v1/evidence", params={"limit": 1000}).json()["evidence"]
            found = [e for e in evidence if e["subject"] == httpx.get(f"{network.urls[2]}/v1/info").json()["node"]]
            expected, spread = fraction * size, 6 * (size * fraction * (1 - fraction)) ** 0.5
            assert abs(len(found) - expected) <= spread, (len(found), expected, size)
            assert all(e["attestation"]["body"]["verdict"] == "disagree" for e in found)
    finally:
        devnet.down(tmp_path / "byz")


def test_witness_refuses_a_log_rewritten_after_cosigning(tmp_path, publisher):
    network = devnet.up(tmp_path / "fork", 3, checkpoint_interval=0.3)
    try:
        path = examples.save(examples.mlp(), tmp_path / "mlp.onnx")
        with Client(network.urls, admin_token=network.admin_token) as client:
            client.publish(path, "alice/mlp", publisher, node=network.urls[0])
            for _ in range(3):
                client.infer("alice/mlp", X, verify="logged")  # cosigned by node1 and node2
        node0 = network.nodes[0]
        origin = httpx.get(f"{node0.url}/v1/info").json()["log_origin"]
        witnessed = _witnessed_size(network.nodes[1], origin)
        assert witnessed >= 3
        # node0 rewrites its history: same key, a fresh log with other entries.
        devnet.stop_pid(node0.pid)
        for suffix in ("", "-wal", "-shm"):
            Path(node0.home, "log", f"log.sqlite{suffix}").unlink(missing_ok=True)
        restarted = devnet.restart(network.root, 0)
        with Client([restarted.urls[0]]) as client:
            for _ in range(witnessed + 2):
                client.infer("alice/mlp", X)
        deadline = time.monotonic() + 20
        log_text = ""
        while time.monotonic() < deadline:
            log_text = Path(node0.log).read_text()
            if "did not cosign" in log_text and "not consistent with the cosigned size" in log_text:
                break
            time.sleep(0.2)
        # Both witnesses refuse: first the same size with another root (409), then the bad proof (422).
        assert "shows a different root for size" in log_text or "not consistent with the cosigned size" in log_text
        assert "not consistent with the cosigned size" in log_text
        checkpoint = SignedCheckpoint.parse(httpx.get(f"{restarted.urls[0]}/checkpoint").text)
        assert len(checkpoint.note.signatures) == 1  # no witness cosigned the rewritten history
        assert _witnessed_size(network.nodes[1], origin) == witnessed  # the witness kept the old view
    finally:
        devnet.down(tmp_path / "fork")


def _witnessed_size(node, origin: str) -> int:
    import sqlite3

    db = sqlite3.connect(Path(node.home) / "witness" / "witness.sqlite")
    row = db.execute("SELECT size FROM cosigned WHERE origin = ?", (origin,)).fetchone()
    db.close()
    return 0 if row is None else row[0]


def test_a_name_no_peer_lists_is_not_found_but_one_a_silent_peer_may_hold_is_unavailable(tmp_path):
    """A node asked for a model it does not hold asks its peers what they hold. When all of them answered and none
    lists it, that is a 404; when a peer did not answer (down, or too busy to answer in time), nobody can say,
    and the node answers 503 naming the peer, which the SDK's pin asks again after a pause (it is idempotent)."""
    import json

    network = devnet.up(tmp_path / "silent", 2, checkpoint_interval=0.3)
    try:
        asker, peer = network.urls
        admin = {"Authorization": f"Bearer {network.admin_token}"}
        with Client(network.urls, admin_token=network.admin_token) as client:
            with pytest.raises(NotFound, match="no peer lists it"):
                client.pin("alice/nothing", asker)
            devnet.stop_pid(network.nodes[1].pid, config=str(Path(network.nodes[1].home).parent / "node.toml"))
            answer = httpx.post(f"{asker}/v1/pin", json={"model": "alice/nothing"}, headers=admin, timeout=30)
            assert answer.status_code == 503, answer.text
            assert answer.headers["content-type"].startswith("application/problem+json")
            assert "not every peer said what it holds" in answer.json()["detail"] and peer in answer.json()["detail"]
            started = time.monotonic()
            with pytest.raises(Unavailable, match="not every peer said what it holds"):
                client.pin("alice/nothing", asker)
            assert time.monotonic() - started >= sum(PIN_RETRY_PAUSES)
        lines = [json.loads(line) for line in Path(network.nodes[0].log).read_text().splitlines() if line[:1] == "{"]
        pins = [line["status"] for line in lines if line.get("event") == "request" and line.get("path") == "/v1/pin"]
        assert pins == [404, 503] + [503] * (len(PIN_RETRY_PAUSES) + 1)
    finally:
        devnet.down(tmp_path / "silent")


def test_bad_requests_get_problem_json(net, model):
    cases = [
        ("POST", "/v1/infer", {"content": b"{not json", "headers": {"content-type": "application/json"}}, 400),
        ("POST", "/v1/infer", {"json": {"model": "alice/mlp", "inputs": {"x": [[1.0] * 3]}}}, 400),
        ("POST", "/v1/infer", {"json": {"model": "nobody/none", "inputs": {}}}, 404),
        ("PUT", "/v1/blobs/sha256:00", {"content": b"x"}, 403),
        ("PUT", "/v1/blobs/sha256:00", {"content": b"x", "headers": {"authorization": b"Bearer \xe9t\xe9"}}, 403),
        ("GET", "/tile/0/" + "x123/" * 1500 + "456", {}, 400),
        ("GET", "/v1/log/entries/999999", {}, 404),
        ("GET", "/tile/0/999", {}, 404),
        ("POST", "/add-checkpoint", {"content": b"garbage"}, 400),
        ("POST", "/v1/infer", {"content": b"x" * (65 << 20), "headers": {"content-type": "application/json"}}, 413),
    ]
    for method, path, kwargs, status in cases:
        response = httpx.request(method, net.urls[0] + path, timeout=30, **kwargs)
        assert response.status_code == status, (path, response.text)
        assert response.headers["content-type"].startswith("application/problem+json"), path
        body = response.json()
        assert body["status"] == status and body["type"].startswith("https://veriml.dev/problems/")


def test_every_request_is_one_structured_log_line_with_its_id(net, model):
    """Each request, the fast inference path and a refused one alike, leaves one JSON line with its request id
    (the client's X-Request-Id, echoed back) and its status: what an operator follows a request by."""
    import json

    body = {"model": "alice/mlp", "inputs": {k: v.tolist() for k, v in X.items()}}
    sent = {"log-line-ok-1": (body, 200), "log-line-bad-1": ({"model": "alice/mlp", "inputs": {}}, 400)}
    for request_id, (payload, status) in sent.items():
        response = httpx.post(f"{net.urls[0]}/v1/infer", json=payload, headers={"x-request-id": request_id}, timeout=30)
        assert response.status_code == status and response.headers["x-request-id"] == request_id
    log = Path(net.nodes[0].log)
    deadline = time.monotonic() + 10
    while True:
        lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
        found = {line["request_id"]: line for line in lines if line.get("event") == "request"}
        if all(request_id in found for request_id in sent) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    for request_id, (_, status) in sent.items():
        line = found[request_id]
        assert (line["level"], line["method"], line["path"], line["status"]) == ("info", "POST", "/v1/infer", status)
        assert line["ts"].endswith("Z") and line["ms"] >= 0


def test_unverifiable_answers_are_refused_by_the_client(net, model):
    with Client(net.urls) as client, pytest.raises(VerificationFailed):
        from veriml.client.protocol import parse_infer

        good = client._request(
            net.urls[0], "POST", "/v1/infer", json={"model": "alice/mlp", "inputs": {"x": X["x"].tolist()}}
        )
        body = good.json()
        body["bundle"]["outputs"]["y"]["data"] = "A" + body["bundle"]["outputs"]["y"]["data"][1:]
        from veriml.client.protocol import ask

        asked = ask(client.manifest("alice/mlp"), X, Bundle.from_json(body["bundle"]).receipt.body.request_id)
        parse_infer(net.urls[0], body, asked)
    assert TlogProof  # the proof type is what the logged level attaches


def test_async_client_at_every_level(net, model):
    import asyncio

    from veriml.client import AsyncClient

    async def run():
        async with AsyncClient(net.urls) as client:
            signed = await client.infer("alice/mlp", X)
            quorum = await client.infer("alice/mlp", X, verify="quorum:3")
            logged = await client.infer("alice/mlp", X, verify="logged")
        return signed, quorum, logged

    signed, quorum, logged = asyncio.run(run())
    assert verify_bundle(signed).consistent
    assert len(quorum.attestations) == 2 and verify_bundle(quorum, agreeing_nodes=3).consistent
    assert logged.log_proof is not None and verify_bundle(logged, level="logged").consistent


def test_quorum_runs_one_version_when_nodes_disagree_on_the_latest(net, publisher, tmp_path):
    v1 = examples.save(examples.mlp(seed=5), tmp_path / "v1.onnx")
    v2 = examples.save(examples.mlp(seed=6), tmp_path / "v2.onnx")
    with Client(net.urls, admin_token=net.admin_token) as client:
        client.publish(v1, "alice/versions", publisher, node=net.urls[0])
        for url in net.urls[1:]:
            client.pin("alice/versions", url)  # everyone holds @1
        client.publish(v2, "alice/versions", publisher, node=net.urls[0])  # only node0 knows @2
        bundle = client.infer("alice/versions", X, verify="quorum:3")
    assert bundle.manifest.body.version == 2
    assert verify_bundle(bundle, agreeing_nodes=3).consistent


def test_bundles_from_the_network_verify_at_the_default_level(net, model, tmp_path):
    """`veriml infer --node ... --verify quorum:3` wrote bundles without a log proof, so `veriml verify` (level
    logged) said INCOMPLETE; answers now carry their inclusion proof, and so do the bundles written from them."""
    from typer.testing import CliRunner

    from veriml.cli.app import app

    runner = CliRunner()
    inputs = tmp_path / "in.json"
    inputs.write_text('{"x": [[0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]]}')
    nodes = [arg for url in net.urls for arg in ("--node", url)]
    for level in ("signed", "quorum:3"):
        out = tmp_path / f"{level}.json"
        done = runner.invoke(app, ["--home", str(tmp_path / "home"), "infer", "alice/mlp", "-i", str(inputs),
                                   "-o", str(out), *nodes, "--verify", level])  # fmt: skip
        assert done.exit_code == 0, done.output
        assert Bundle.load(out).log_proof is not None
        trusted = [arg for info in infos(net) for arg in ("--node", info["node"])]
        checked = runner.invoke(app, ["--home", str(tmp_path / "home"), "verify", str(out), *trusted])
        assert checked.exit_code == 0, checked.output
        assert "log.inclusion" in checked.output and "VERIFIED" in checked.output
