"""A quorum's answers are checked with the work they share done once: the request body made once, a manifest
parsed once per exact JSON value and a signature verified once per exact bytes. Members whose answers are nearly
those of honest members, but not byte for byte (one bit of the manifest's signature, one output value moved by
one unit in the last place), must not ride on what an honest member's answer already passed: each is refused with
the specific failed check, in whatever order the answers arrive, and an agreeing quorum is made of honest
members only."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import publish_mlp_everywhere
from veriml import devnet
from veriml.client import Client
from veriml.errors import VerificationFailed
from veriml.identity import SigningKey
from veriml.receipts import parse_signed_receipt

HERE = Path(__file__).parent
OTHER_SIGNATURE, OUTPUT_CHANGED = 2, 3
SCRIPTS = {OTHER_SIGNATURE: "quorum_other_manifest_signature.py", OUTPUT_CHANGED: "quorum_one_output_changed.py"}
LIARS = [(OTHER_SIGNATURE, "manifest.signature"), (OUTPUT_CHANGED, "outputs.digest")]  # and the check each fails
X = {"x": np.random.default_rng(11).standard_normal((1, 16)).astype(np.float32)}


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    root = tmp_path_factory.mktemp("quorum-shared")
    commands = {n: [sys.executable, str(HERE / script)] for n, script in SCRIPTS.items()}
    network = devnet.up(root, 4, checkpoint_interval=0.3, audit_fraction=0.0, commands=commands)
    yield network
    devnet.down(root)


@pytest.fixture(scope="module")
def model(net, tmp_path_factory):
    return publish_mlp_everywhere(net, tmp_path_factory.mktemp("models"))


def honest_keys(net):
    return {SigningKey.load(Path(net.nodes[n].home) / "keys" / "node.key").public.public for n in (0, 1)}


@pytest.mark.parametrize(
    ("liar", "check"), [(OTHER_SIGNATURE, "manifest.signature"), (OUTPUT_CHANGED, "outputs.digest")]
)
def test_a_member_differing_by_one_value_from_honest_ones_is_refused_in_a_quorum(net, model, liar, check):
    """Three calls rotate the liar through every position: before, between and after the honest answers."""
    with Client([net.urls[0], net.urls[1], net.urls[liar]]) as client:
        for _ in range(3):
            with pytest.raises(VerificationFailed) as refused:
                client.infer("alice/mlp", X, verify="quorum:3")
            message = str(refused.value)
            assert "quorum:3: only 2 distinct nodes answered acceptably" in message
            assert f"node {net.urls[liar]}: bundle does not verify" in message
            assert f"name='{check}', status='fail'" in message
            assert f"node {net.urls[0]}" not in message and f"node {net.urls[1]}" not in message


@pytest.mark.parametrize(
    ("liar", "check"), [(OTHER_SIGNATURE, "manifest.signature"), (OUTPUT_CHANGED, "outputs.digest")]
)
def test_the_same_member_is_refused_alone_after_honest_answers_were_checked(net, model, liar, check):
    with Client([net.urls[0]]) as client:
        client.infer("alice/mlp", X)  # the honest manifest and signatures are now known to the client's checks
    with Client([net.urls[liar]]) as client, pytest.raises(VerificationFailed) as refused:
        client.infer("alice/mlp", X)
    assert f"name='{check}', status='fail'" in str(refused.value)


def test_an_agreeing_quorum_is_made_of_the_honest_members_only(net, model):
    with Client(net.urls) as client:
        for _ in range(4):
            bundle = client.infer("alice/mlp", X, verify="quorum:2")
            signers = {bundle.receipt.body.node.public} | {
                parse_signed_receipt(a["receipt"]).body.node.public for a in bundle.attestations
            }
            assert signers == honest_keys(net) and bundle.manifest.id == model.id
            bundle.manifest.check_signature()
