"""Open publishing: a node takes publisher-signed models without an admin token. A dishonest publisher tries to
publish under a name another key owns, to store bytes other than those it signed, to go over its quotas, to
replay or fork an older version, and to frame nodes with a model whose honest runs differ. Each is refused with
its own RFC 9457 problem type, and nothing is stored."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import httpx
import onnx
import pytest

from tests.adversarial.publishing_attackers import post_manifest, resign, sign_as, upload
from tests.adversarial.test_framing_random_ops import noise_model, sign_unchecked
from veriml import devnet, examples
from veriml.client import Client
from veriml.errors import Conflict, InvalidInput, PermissionDenied, Unavailable, VerificationFailed
from veriml.hub import ComparisonPolicy
from veriml.identity import SigningKey

QUOTAS = {
    "VERIML_NODE_PUBLISH_QUOTA_MODELS": "2",
    "VERIML_NODE_PUBLISH_RATE_PER_HOUR": "4",
    "VERIML_NODE_PUBLISH_QUOTA_BYTES": "40000",
}


def problem_type(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    return response.json()["type"].rsplit("/", 1)[-1]


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """One node on a static peer list, with small publishing quotas (the node reads VERIML_NODE_* at start)."""
    root = tmp_path_factory.mktemp("devnet")
    saved = {name: os.environ.get(name) for name in QUOTAS}
    os.environ.update(QUOTAS)
    try:
        network = devnet.up(root, 1, checkpoint_interval=0.5, audit_fraction=0.0)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    yield network.urls[0], Path(network.nodes[0].home)
    devnet.down(root)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    found = {f"mlp{seed}": examples.save(examples.mlp(seed=seed), folder / f"mlp{seed}.onnx") for seed in range(4)}
    found["fork"] = examples.save(examples.mlp(seed=7), folder / "fork.onnx")  # only ever offered as a fork
    found["big"] = examples.save(examples.mlp((16, 512, 16)), folder / "big.onnx")  # over the 40,000-byte quota
    onnx.save(noise_model(), folder / "noise.onnx")
    found["noise"] = folder / "noise.onnx"
    return found


def held(node: str, what: str) -> bool:
    return httpx.get(f"{node}{what}").status_code == 200


def test_publishing_needs_no_admin_token_and_is_idempotent(node, models):
    url, _ = node
    alice = SigningKey.generate("alice")
    with Client([url]) as client:  # no admin token
        first = client.publish(models["mlp0"], "alice/mlp", alice)
        again = client.publish(models["mlp0"], "alice/mlp", alice)
    assert first.body.ref == "alice/mlp@1" and again.id == first.id
    assert held(url, f"/v1/blobs/{first.body.blob}")
    listed = httpx.get(f"{url}/v1/hub/models", params={"q": "alice/"}).json()["models"]
    assert [m["name"] for m in listed] == ["alice/mlp"]


def test_another_key_publishing_under_an_owned_name_is_refused(node, models):
    url, _ = node
    owner, mallory = SigningKey.generate("bob"), SigningKey.generate("bob")  # same key name, other key
    with Client([url]) as client:
        v1 = client.publish(models["mlp0"], "bob/mlp", owner)
        # The next version of an owned name, signed by another key: refused before any byte is taken.
        forged = sign_as(models["mlp1"], "bob/mlp", 2, v1.id, mallory)
        answer = post_manifest(url, forged)
        assert answer.status_code == 403 and problem_type(answer) == "name-owned", answer.text
        assert "owned by key" in answer.json()["detail"]
        with pytest.raises(PermissionDenied, match="owned by key"):
            client.push(forged, models["mlp1"])
        # Another name under the owner part `bob/`: the first key to publish there holds it.
        squatted = sign_as(models["mlp1"], "bob/other", 1, None, mallory)
        answer = post_manifest(url, squatted)
        assert answer.status_code == 403 and problem_type(answer) == "name-owned", answer.text
    shown = httpx.get(f"{url}/v1/models/bob/mlp").json()
    assert shown["body"]["version"] == 1 and shown["body"]["publisher"] == owner.public.vkey
    assert httpx.get(f"{url}/v1/models/bob/other").status_code == 404
    assert not held(url, f"/v1/blobs/{forged.body.blob}")


def test_manifest_whose_blob_does_not_hash_is_refused_and_nothing_is_stored(node, models):
    url, home = node
    carol = SigningKey.generate("carol")
    signed = sign_as(models["mlp2"], "carol/mlp", 1, None, carol)
    answer = post_manifest(url, signed)
    assert answer.status_code == 202, answer.text
    other = models["mlp3"].read_bytes()  # the same size, other weights
    assert len(other) == signed.body.size
    refused = upload(url, signed, other)
    assert refused.status_code == 422 and problem_type(refused) == "blob-mismatch", refused.text
    assert "Nothing was stored" in refused.json()["detail"]
    longer = upload(url, signed, models["mlp2"].read_bytes() + b"\0")
    assert longer.status_code == 422 and problem_type(longer) == "blob-mismatch", longer.text
    assert httpx.get(f"{url}/v1/models/carol/mlp").status_code == 404
    for blob in (signed.body.blob, "sha256:" + hashlib.sha256(other).hexdigest()):
        assert not held(url, f"/v1/blobs/{blob}")
    assert list((home / "publishing" / "incoming").iterdir()) == []
    # A manifest that names no pending publish takes no bytes at all.
    stranger = sign_as(models["mlp3"], "carol/never", 1, None, carol)
    never = upload(url, stranger, models["mlp3"].read_bytes())
    assert never.status_code == 404 and problem_type(never) == "no-pending-publish"
    # The right bytes are then taken.
    assert upload(url, signed, models["mlp2"].read_bytes()).status_code == 201


def test_quota_exceeded_is_refused(node, models):
    url, _ = node
    dave, erin, frank = (SigningKey.generate(n) for n in ("dave", "erin", "frank"))
    with Client([url]) as client:
        # Model names: two per publisher key here.
        client.publish(models["mlp0"], "dave/a", dave)
        client.publish(models["mlp1"], "dave/b", dave)
        third = sign_as(models["mlp2"], "dave/c", 1, None, dave)
        answer = post_manifest(url, third)
        assert answer.status_code == 403 and problem_type(answer) == "quota-exceeded", answer.text
        assert "quota of 2 model names" in answer.json()["detail"]
        # Bytes: 40,000 per publisher key here.
        with pytest.raises(PermissionDenied, match="quota of 40,000"):
            client.publish(models["big"], "erin/big", erin)
        # Publishes per hour: four per publisher key here.
        latest = None
        for seed in range(4):
            latest = client.publish(models[f"mlp{seed}"], "frank/mlp", frank)
        assert latest.body.version == 4
        with pytest.raises(Unavailable, match="4 publishes in the last hour"):
            client.publish(models["big"], "frank/mlp", frank)
        fifth = sign_as(models["big"], "frank/mlp", 5, latest.id, frank)
        answer = post_manifest(url, fifth)
        assert answer.status_code == 429 and problem_type(answer) == "publish-rate-limited", answer.text
    assert httpx.get(f"{url}/v1/models/dave/c").status_code == 404
    assert httpx.get(f"{url}/v1/models/erin/big").status_code == 404
    assert httpx.get(f"{url}/v1/models/frank/mlp").json()["body"]["version"] == 4


def test_replayed_or_older_version_is_refused(node, models):
    url, _ = node
    grace = SigningKey.generate("grace")
    with Client([url]) as client:
        v1 = client.publish(models["mlp0"], "grace/mlp", grace)
        v2 = client.publish(models["mlp1"], "grace/mlp", grace)
    # The exact old manifest again changes nothing: it already is version 1.
    replay = post_manifest(url, v1)
    assert replay.status_code == 200 and replay.json() == {"manifest_id": str(v1.id), "ref": "grace/mlp@1",
                                                           "created": False}  # fmt: skip
    # A new version 1 or 2 (a fork of history, other bytes) and a version that skips ahead are refused.
    for version, parent in ((1, None), (2, v1.id), (4, v2.id)):
        forked = sign_as(models["fork"], "grace/mlp", version, parent, grace)
        answer = post_manifest(url, forked)
        assert answer.status_code == 409 and problem_type(answer) == "version-conflict", answer.text
    older = sign_as(models["fork"], "grace/mlp", 1, None, grace)
    with Client([url]) as client, pytest.raises(Conflict, match="older than the latest stored"):
        client.push(older, models["fork"])
    # Version 3 naming version 1 as its parent is refused too.
    skipped = resign(sign_as(models["fork"], "grace/mlp", 3, v2.id, grace), grace, parent=v1.id)
    answer = post_manifest(url, skipped)
    assert answer.status_code == 409 and problem_type(answer) == "version-conflict", answer.text
    assert httpx.get(f"{url}/v1/models/grace/mlp").json()["body"]["version"] == 2
    assert not held(url, f"/v1/blobs/{older.body.blob}")


def test_framing_model_with_random_operators_is_refused_on_the_open_path(node, models):
    url, _ = node
    mallory = SigningKey.generate("mallory")
    with Client([url]) as client:
        with pytest.raises(InvalidInput, match=r"operator RandomUniformLike .* draws random numbers"):
            client.publish(models["noise"], "mallory/noise", mallory)  # the publisher's own tool refuses it
        signed = sign_unchecked(models["noise"], "mallory/noise", mallory, ComparisonPolicy())
        assert post_manifest(url, signed).status_code == 202
        refused = upload(url, signed, models["noise"].read_bytes())
        assert refused.status_code == 400 and problem_type(refused) == "model-refused", refused.text
        assert "RandomUniformLike" in refused.json()["detail"]
        # Under another policy the refused bytes are remembered: refused before any byte is sent again.
        lax = sign_unchecked(models["noise"], "mallory/noise", mallory, ComparisonPolicy.tolerance(1.0))
        again = post_manifest(url, lax)
        assert again.status_code == 400 and problem_type(again) == "model-refused", again.text
        assert "refused under every comparison policy" in again.json()["detail"]
    assert httpx.get(f"{url}/v1/models/mallory/noise").status_code == 404
    assert not held(url, f"/v1/blobs/{signed.body.blob}")


def test_a_bad_signature_is_refused(node, models):
    url, _ = node
    heidi = SigningKey.generate("heidi")
    signed = sign_as(models["mlp0"], "heidi/mlp", 1, None, heidi)
    tampered = signed.to_json()
    tampered["body"]["license"] = "stolen"
    answer = httpx.post(f"{url}/v1/publish", json=tampered)
    assert answer.status_code == 422 and problem_type(answer) == "verification-failed", answer.text
    with Client([url]) as client, pytest.raises(VerificationFailed):
        client._request(url, "POST", "/v1/publish", json=tampered)
    assert httpx.get(f"{url}/v1/models/heidi/mlp").status_code == 404
