"""Witness and quorum inflation (issue 10, attack 2): one key counted as several. A witness key listed twice, the
log's own key as its witness, one node under two URLs, one Ed25519 key under two names: each counts once (or,
for the log's own key, not at all) in the tlog trust policy, `veriml verify --witness/--quorum/--agreeing-nodes`,
the client's quorum and the client's witness list. Keys are counted by their public key bytes everywhere."""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.helpers import publish_mlp_everywhere
from veriml import devnet
from veriml.cli.app import app
from veriml.client import Client
from veriml.client.protocol import attestation
from veriml.errors import Unavailable, VerificationFailed
from veriml.identity import SigningKey
from veriml.tlog import TlogProof, cosign
from veriml.verify import verify_bundle

X = {"x": np.random.default_rng(5).standard_normal((1, 16)).astype(np.float32)}
TWIN = 2  # node 2 runs node 0's key under another name


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    """Three node processes; node 2's key is node 0's Ed25519 key renamed (one operator, two names)."""
    root = tmp_path_factory.mktemp("inflation")
    key = SigningKey.generate("veriml.local/node-original")
    for number, named in ((0, key), (TWIN, key.renamed("veriml.local/node-twin"))):
        path = root / f"node{number}" / "home" / "keys" / "node.key"
        path.parent.mkdir(parents=True)
        named.save(path)
    network = devnet.up(root, 3, checkpoint_interval=0.3, audit_fraction=0.0)
    yield network
    devnet.down(root)


@pytest.fixture(scope="module")
def model(net, tmp_path_factory):
    return publish_mlp_everywhere(net, tmp_path_factory.mktemp("models"))


def key_of(net, n):
    return SigningKey.load(Path(net.nodes[n].home) / "keys" / "node.key")


@pytest.fixture(scope="module")
def logged(net, model):
    """A bundle from node 1, with a log proof cosigned by nodes 0 and 2 (one key, two names)."""
    with Client([net.urls[1], net.urls[0], net.urls[TWIN]]) as client:
        for _ in range(3):
            bundle = client.infer("alice/mlp", X, verify="logged")
            if bundle.receipt.body.node.public == key_of(net, 1).public.public:
                return bundle
    raise AssertionError("node 1 never served")


@pytest.fixture
def proxy(net):
    """A second URL for node 1: a TCP forwarder on another port."""
    target = ("127.0.0.1", int(net.urls[1].rsplit(":", 1)[1]))
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            upstream = socket.create_connection(target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=pipe, args=(a, b), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    listener.close()


def cli_verify(bundle, tmp_path, *args):
    path = tmp_path / "result.bundle.json"
    bundle.save(path)
    return CliRunner().invoke(app, ["verify", str(path), "--json", *args])


def test_duplicate_witness_key_counts_once(net, logged, tmp_path):
    w0 = key_of(net, 0).cosigner_public.vkey
    assert verify_bundle(logged, level="logged", trusted_witnesses=[w0], witness_quorum=1).verified
    report = verify_bundle(logged, level="logged", trusted_witnesses=[w0, w0], witness_quorum=2)
    check = report.check("log.inclusion")
    assert not report.verified and check.status == "fail"
    assert "quorum 2 of 1 distinct witness key(s) is impossible" in check.detail
    result = cli_verify(logged, tmp_path, "--witness", w0, "--witness", w0, "--quorum", "2")
    assert result.exit_code == 1 and "quorum 2 of 1 distinct witness key(s) is impossible" in result.output
    # The same key under another name (node 2 is node 0 renamed) is the same witness.
    w2 = key_of(net, TWIN).cosigner_public.vkey
    assert w2 != w0
    report = verify_bundle(logged, level="logged", trusted_witnesses=[w0, w2], witness_quorum=2)
    assert "quorum 2 of 1 distinct witness key(s) is impossible" in report.check("log.inclusion").detail


def test_log_key_cannot_witness_itself(net, logged, tmp_path):
    log_key = key_of(net, 1)
    proof = TlogProof.parse(logged.log_proof)
    self_cosigned = proof.checkpoint.with_cosignatures([cosign(proof.checkpoint.checkpoint, log_key)])
    forged = replace(logged, log_proof=replace(proof, checkpoint=self_cosigned).to_text())
    own = log_key.cosigner_public.vkey
    report = verify_bundle(forged, level="logged", trusted_witnesses=[own], witness_quorum=1)
    assert "quorum 1 of 0 distinct witness key(s) is impossible" in report.check("log.inclusion").detail
    stranger = SigningKey.generate("witness.example/w9").cosigner_public.vkey
    report = verify_bundle(forged, level="logged", trusted_witnesses=[own, stranger], witness_quorum=1)
    assert not report.verified
    assert "cosigned by 0 of the trusted witnesses, 1 required" in report.check("log.inclusion").detail
    result = cli_verify(forged, tmp_path, "--witness", own, "--witness", stranger, "--quorum", "1")
    assert result.exit_code == 1 and "cosigned by 0 of the trusted witnesses" in result.output
    # The client never takes the serving node's own key as its witness.
    with Client([net.urls[1]]) as client, pytest.raises(Unavailable, match="no other node"):
        client.infer("alice/mlp", X, verify="logged")


def test_one_node_under_two_urls_counts_once(net, model, proxy):
    with Client([net.urls[1], proxy]) as client:
        client.refresh()
        assert len(client.nodes.order()) == 1  # the same key behind both URLs: one node
        with pytest.raises(Unavailable, match="quorum:2: only 1 distinct nodes answered acceptably"):
            client.infer("alice/mlp", X, verify="quorum:2")
        with pytest.raises(Unavailable, match="no other node"):
            client.infer("alice/mlp", X, verify="logged")  # it cannot cosign itself under its other URL
        # Even when the client could not tell the URLs apart beforehand, the receipts' keys count once.
        client.nodes.infos.clear()
        client.nodes.infos["unknown"] = {}
        with pytest.raises(VerificationFailed, match="is already counted"):
            client.infer("alice/mlp", X, verify="quorum:2")


def test_renamed_key_counts_as_the_same_node(net, model, tmp_path):
    original, twin = key_of(net, 0), key_of(net, TWIN)
    assert original.public.public == twin.public.public and original.key_id != twin.key_id
    with Client([net.urls[0], net.urls[TWIN]]) as client, pytest.raises(Unavailable, match="only 1 distinct nodes"):
        client.infer("alice/mlp", X, verify="quorum:2")
    with Client(net.urls) as client:
        bundle = client.infer("alice/mlp", X, verify="quorum:2")
        assert len(bundle.attestations) == 1
        with pytest.raises(Unavailable, match="only 2 distinct nodes"):
            client.infer("alice/mlp", X, verify="quorum:3")
    # Offline: a bundle carrying the twin's receipt as a second node's attestation.
    answers = {}
    for n in (0, 1, TWIN):
        with Client([net.urls[n]]) as client:
            answers[n] = client.infer("alice/mlp", X)
    inflated = replace(answers[0], attestations=(attestation(answers[TWIN]),))
    report = verify_bundle(inflated, agreeing_nodes=2)
    assert not report.verified and "repeats a node key already counted" in report.check("attestations").detail
    result = cli_verify(inflated, tmp_path, "--level", "signed", "--agreeing-nodes", "2")
    assert result.exit_code == 1 and "repeats a node key already counted" in result.output
    honest = replace(answers[0], attestations=(attestation(answers[1]),))
    assert verify_bundle(honest, agreeing_nodes=2).consistent
    both = replace(answers[0], attestations=(attestation(answers[1]), attestation(answers[TWIN])))
    result = cli_verify(both, tmp_path, "--level", "signed", "--agreeing-nodes", "3")
    assert result.exit_code == 1 and "repeats a node key already counted" in result.output
