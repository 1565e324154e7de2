"""Answer substitution (issue 10, attack 1): a node answers a request with a validly signed bundle that is not
the answer to it — another model, another publisher's model of the same name, other inputs, an older answer.
The client binds every answer to what it asked (resolved manifest id, inputs it converted, request id it chose)
and refuses the rest, at every level and in both clients; a substituting node then counts for nothing."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import numpy as np
import pytest

from veriml import devnet, examples
from veriml.client import AsyncClient, Client
from veriml.errors import VerificationFailed
from veriml.identity import SigningKey
from veriml.receipts import parse_signed_receipt
from veriml.verify import verify_bundle

HERE = Path(__file__).parent
SCRIPTS = {
    2: "substitution_other_model.py",
    3: "substitution_other_publisher.py",
    4: "substitution_other_inputs.py",
    5: "substitution_replay.py",
    6: "substitution_own_salt.py",
    7: "substitution_other_privacy.py",
}
OTHER_MODEL, OTHER_PUBLISHER, OTHER_INPUTS, REPLAY, OWN_SALT, OTHER_PRIVACY = 2, 3, 4, 5, 6, 7
X = {"x": np.random.default_rng(7).standard_normal((1, 16)).astype(np.float32)}


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    root = tmp_path_factory.mktemp("substitution")
    commands = {n: [sys.executable, str(HERE / script)] for n, script in SCRIPTS.items()}
    network = devnet.up(root, 8, checkpoint_interval=0.3, audit_fraction=0.0, commands=commands)
    yield network
    devnet.down(root)


@pytest.fixture(scope="module")
def alice():
    return SigningKey.generate("alice")


@pytest.fixture(scope="module")
def model(net, alice, tmp_path_factory):
    """alice/mlp on every node; alice/other (same input signature, other weights) on the other-model node."""
    models = tmp_path_factory.mktemp("models")
    with Client(net.urls, admin_token=net.admin_token) as client:
        manifest = client.publish(examples.save(examples.mlp(), models / "mlp.onnx"), "alice/mlp", alice,
                                  node=net.urls[0])  # fmt: skip
        client.publish(examples.save(examples.mlp(seed=1), models / "other.onnx"), "alice/other", alice,
                       node=net.urls[OTHER_MODEL])  # fmt: skip
        for url in net.urls[1:]:
            client.pin("alice/mlp", url)
    return manifest


def node_key(net, n):
    return SigningKey.load(Path(net.nodes[n].home) / "keys" / "node.key").public


def honest_keys(net):
    return {node_key(net, 0).public, node_key(net, 1).public}


def test_node_substituting_another_models_answer_is_refused(net, model):
    with Client([net.urls[OTHER_MODEL]]) as client, pytest.raises(VerificationFailed) as refused:
        client.infer("alice/mlp", X)
    assert f"node {net.urls[OTHER_MODEL]} answered for manifest" in str(refused.value)
    assert "alice/other@1" in str(refused.value) and f"asked {model.id} (alice/mlp@1" in str(refused.value)
    # With an honest node to fall back on, the answer is the honest node's, for the manifest asked.
    with Client([net.urls[OTHER_MODEL], net.urls[0]]) as client:
        for _ in range(2):  # the rotating start asks the substituting node first once
            bundle = client.infer("alice/mlp", X)
            assert bundle.manifest.id == model.id and bundle.receipt.body.node.public in honest_keys(net)


def test_node_substituting_another_publishers_model_of_the_same_name_is_refused(net, model, alice):
    with Client([net.urls[OTHER_PUBLISHER]]) as client, pytest.raises(VerificationFailed) as refused:
        client.infer("alice/mlp", X)
    message = str(refused.value)
    assert f"node {net.urls[OTHER_PUBLISHER]} answered for manifest" in message
    assert "(alice/mlp@1 by mallory+" in message and f"asked {model.id} (alice/mlp@1 by {alice.key_id})" in message
    # Pinning the publisher: a reference by name resolves only to a manifest that key signed, whatever the name.
    with Client(net.urls[:2], publishers=[alice.public.vkey]) as client:
        assert client.infer("alice/mlp", X).manifest.body.publisher.public == alice.public.public
        stranger = SigningKey.generate("alice").public  # same name, other key: not the pinned publisher
        with pytest.raises(VerificationFailed, match="not by a pinned publisher"):
            client.manifest("alice/mlp", publisher=stranger)


def test_node_answering_for_other_inputs_is_refused(net, model):
    with Client([net.urls[OTHER_INPUTS]]) as client, pytest.raises(VerificationFailed) as refused:
        client.infer("alice/mlp", X)
    assert f"node {net.urls[OTHER_INPUTS]} answered for other inputs: input 'x' holds other values" in str(
        refused.value
    )
    # Plain lists are converted by the client with the node's own conversion, so the binding holds for them too.
    with Client([net.urls[OTHER_INPUTS]]) as client, pytest.raises(VerificationFailed, match="for other inputs"):
        client.infer("alice/mlp", {"x": X["x"].tolist()})


def test_node_replaying_an_older_answer_is_refused(net, model):
    with Client([net.urls[REPLAY]]) as client:
        first = client.infer("alice/mlp", X)  # the first time, it answers honestly
        assert verify_bundle(first).consistent
        with pytest.raises(VerificationFailed) as refused:
            client.infer("alice/mlp", X)
    assert f"node {net.urls[REPLAY]} answered for request id {first.receipt.body.request_id!r}, asked" in str(
        refused.value
    )


def test_quorum_member_substituting_does_not_count(net, model):
    liars = [net.urls[n] for n in (OTHER_MODEL, OTHER_PUBLISHER, OTHER_INPUTS)]
    with Client([*liars, net.urls[0], net.urls[1]]) as client:
        bundle = client.infer("alice/mlp", X, verify="quorum:2")
        signers = {bundle.receipt.body.node.public} | {
            parse_signed_receipt(a["receipt"]).body.node.public for a in bundle.attestations
        }
        assert signers == honest_keys(net) and len(bundle.attestations) == 1
        assert bundle.manifest.id == model.id
        with pytest.raises(VerificationFailed) as refused:
            client.infer("alice/mlp", X, verify="quorum:3")
    message = str(refused.value)
    assert "quorum:3: only 2 distinct nodes answered acceptably" in message
    assert all(f"node {url} answered for" in message for url in liars)


def test_logged_level_refuses_a_substituted_bundle(net, model):
    with Client([net.urls[OTHER_INPUTS]]) as client, pytest.raises(VerificationFailed) as refused:
        client.infer("alice/mlp", X, verify="logged")
    assert "answered for other inputs" in str(refused.value)
    # With honest nodes beside it, the answer is an honest one, logged and cosigned by another key.
    with Client([net.urls[OTHER_INPUTS], net.urls[0], net.urls[1]]) as client:
        for _ in range(2):
            bundle = client.infer("alice/mlp", X, verify="logged")
            assert bundle.log_proof is not None and bundle.receipt.body.node.public in honest_keys(net)


def test_async_client_binds_answers_too(net, model):
    async def main():
        async with AsyncClient([net.urls[OTHER_MODEL]]) as client:
            with pytest.raises(VerificationFailed, match="answered for manifest"):
                await client.infer("alice/mlp", X)
        async with AsyncClient([net.urls[REPLAY]]) as client:
            await client.infer("alice/mlp", {"x": X["x"] * 2})
            with pytest.raises(VerificationFailed, match="answered for request id"):
                await client.infer("alice/mlp", {"x": X["x"] * 2})
        liars = [net.urls[n] for n in (OTHER_PUBLISHER, OTHER_INPUTS)]
        async with AsyncClient([*liars, net.urls[0], net.urls[1]]) as client:
            bundle = await client.infer("alice/mlp", X, verify="quorum:2", logged=True)
            assert bundle.receipt.body.node.public in honest_keys(net) and len(bundle.attestations) == 1
            with pytest.raises(VerificationFailed, match="only 2 distinct nodes answered acceptably"):
                await client.infer("alice/mlp", X, verify="quorum:3")

    asyncio.run(main())


def test_node_ignoring_the_clients_salt_is_refused(net, model):
    with Client([net.urls[OWN_SALT]]) as client, pytest.raises(VerificationFailed) as refused:
        client.infer("alice/mlp", X)
    assert f"node {net.urls[OWN_SALT]} answered with salt 0000000000000000..., asked" in str(refused.value)


def test_node_recording_another_privacy_is_refused(net, model):
    with Client([net.urls[OTHER_PRIVACY]]) as client:
        with pytest.raises(VerificationFailed) as refused:
            client.infer("alice/mlp", X, privacy="private")
        assert f"node {net.urls[OTHER_PRIVACY]} answered with privacy 'public', asked 'private'" in str(refused.value)
        assert client.infer("alice/mlp", X, privacy="public").receipt.body.privacy == "public"
