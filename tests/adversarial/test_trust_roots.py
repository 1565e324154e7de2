"""Attack 8 (docs/threat-model.md): a forger makes a whole, self-consistent bundle with fresh keys — publisher,
node, log and witness — for a model named like the real one, and hands it to a user who runs `veriml verify`.
Without trust roots the verdict must not read "verified"; with the user's keys it must fail on the key."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from veriml import examples
from veriml.cli.app import app
from veriml.identity import SigningKey
from veriml.service import Home, Service
from veriml.tlog import Witness

runner = CliRunner()


@pytest.fixture(scope="module")
def forged(tmp_path_factory):
    """The forger's own home: a publisher key named "alice", a fresh node key, a fresh witness that cosigns."""
    root = tmp_path_factory.mktemp("forger")
    home = Home(root / "home")
    SigningKey.generate("alice").save(home.publisher_key_path)
    model = examples.save(examples.mlp(), root / "mlp.onnx")
    with Service(home) as service:
        service.publish(model, name="alice/mlp")
        bundle, index = service.infer_logged("alice/mlp", {"x": np.ones((1, 16), np.float32)})
        signed = service.log.sign_checkpoint()
        witness_key = SigningKey.generate("witness.example/forger")
        witness = Witness(root / "witness.sqlite", witness_key, {service.log.origin: [service.node_key.public]})
        service.log.collect_cosignatures(signed, [(witness.public, witness.add_checkpoint)])
        witness.close()
        bundle = service.attach_proof(bundle, index)
    path = root / "forged.bundle.json"
    bundle.save(path)
    return path, witness_key, model


def test_a_bundle_made_with_fresh_keys_is_not_anchored_without_trust_roots(forged, tmp_path):
    path, _, model = forged
    result = runner.invoke(app, ["--home", str(tmp_path / "user"), "verify", str(path), "--level", "signed", "--json"])
    report = json.loads(result.stdout)
    assert result.exit_code == 1
    assert report["verdict"] == "unanchored"
    assert report["relative_to"].startswith("no trusted keys")
    user = str(tmp_path / "user")
    shown = runner.invoke(app, ["--home", user, "verify", str(path), "--blob", str(model), "--reexec"])
    assert shown.exit_code == 1 and "NOT ANCHORED" in shown.stdout and "VERIFIED" not in shown.stdout


def test_a_bundle_made_with_fresh_keys_fails_against_the_users_keys(forged, tmp_path):
    path, _, _ = forged
    real_alice = SigningKey.generate("alice").public.vkey
    real_node = SigningKey.generate("veriml.local/node-real").public.vkey
    result = runner.invoke(app, ["--home", str(tmp_path / "user"), "verify", str(path), "--level", "signed",
                                 "--publisher", real_alice, "--node", real_node, "--json"])  # fmt: skip
    report = json.loads(result.stdout)
    assert result.exit_code == 1 and report["verdict"] == "failed"
    failed = {check["name"] for check in report["checks"] if check["status"] == "fail"}
    assert failed == {"manifest.publisher", "receipt.node"}


def test_a_forgers_own_witness_does_not_anchor_the_log_for_a_user_who_trusts_other_witnesses(forged, tmp_path):
    path, forger_witness, _ = forged
    users_witness = SigningKey.generate("witness.example/honest").cosigner_public.vkey
    result = runner.invoke(app, ["--home", str(tmp_path / "user"), "verify", str(path), "--witness", users_witness,
                                 "--json"])  # fmt: skip
    report = json.loads(result.stdout)
    assert result.exit_code == 1 and report["verdict"] == "failed"
    assert next(c for c in report["checks"] if c["name"] == "log.inclusion")["status"] == "fail"
    # The forger's witness is a real cosigner of the forger's log: naming it is what anchors it, and the report
    # says exactly that it is the only root.
    named = runner.invoke(app, ["--home", str(tmp_path / "user"), "verify", str(path), "--witness",
                                forger_witness.cosigner_public.vkey, "--json"])  # fmt: skip
    assert json.loads(named.stdout)["trust"] == {"publishers": 0, "nodes": 0, "witnesses": 1, "witness_quorum": 1}
