"""Keys of small order: under them OpenSSL's Ed25519 check passes signatures nobody made, so a receipt, manifest,
checkpoint or cosignature "signed" with one proves nothing, and its holder can disown it. The forger
(`weak_key_forger.py`) serves outputs of its choosing in the name of a node with the neutral point as key; every
way in refuses such a key with one specific error: the bundle parser, the trust options, the CLI."""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from nacl.bindings import crypto_core_ed25519_add

from tests.adversarial.weak_key_forger import NEUTRAL, ORDER_8, SIGNS_ANYTHING, SMALL_ORDER, forge, weak_key
from veriml import examples
from veriml.codec import canonical_json
from veriml.errors import InvalidInput
from veriml.identity import Domain, SigningKey, VerifyingKey, keys
from veriml.identity.keys import COSIGNATURE_ED25519, ED25519
from veriml.receipts import Bundle
from veriml.service import Home, Service
from veriml.verify import verify_bundle

REFUSED = "not a valid Ed25519 public key"


@pytest.fixture(scope="module")
def honest(tmp_path_factory):
    root = tmp_path_factory.mktemp("weak-keys")
    home = Home(root / "home")
    SigningKey.generate("alice").save(home.publisher_key_path)
    with Service(home) as service:
        manifest = service.publish(examples.save(examples.mlp(), root / "mlp.onnx"), name="alice/mlp").manifest
        bundle, _ = service.infer_logged(manifest, {"x": np.ones((1, 16), np.float32)})
    return json.loads(bundle.to_bytes())


def _forged(honest) -> dict:
    return forge(honest, {name: np.full(t["shape"], 42.0, np.float32) for name, t in honest["outputs"].items()})


def test_openssl_alone_would_accept_the_forged_receipt(honest):
    """Why the check exists: the forged signature verifies under the neutral key with `cryptography` (OpenSSL)."""
    forged = _forged(honest)
    message = Domain.RECEIPT.message(canonical_json(forged["receipt"]["body"]))
    Ed25519PublicKey.from_public_bytes(NEUTRAL).verify(SIGNS_ANYTHING, message)  # raises if refused


def test_without_the_key_check_the_forgery_verifies(honest, monkeypatch):
    """The forgery is complete: with libsodium's point check switched off, it verifies at level `signed` for a
    user who was given the forger's node key, outputs of the forger's choosing and all."""
    monkeypatch.setattr("veriml.identity.keys.crypto_core_ed25519_is_valid_point", lambda public: True)
    try:
        forged = Bundle.from_bytes(canonical_json(_forged(honest)))
        report = verify_bundle(forged, level="signed", trusted_nodes=[weak_key("forged-node")])
    finally:
        keys._parse_key.cache_clear()  # key texts parsed with the check off must not outlive this test
    assert report.verdict == "verified", [(c.name, c.status, c.detail) for c in report.checks]
    assert forged.outputs["y"].tolist() != Bundle.from_bytes(canonical_json(honest)).outputs["y"].tolist()


def test_a_bundle_in_the_name_of_a_small_order_key_is_refused(honest):
    forged = canonical_json(_forged(honest))
    with pytest.raises(InvalidInput, match=REFUSED):
        Bundle.from_bytes(forged)


def test_no_role_takes_a_small_order_or_mixed_order_key(honest):
    """Signers and witness cosigners alike; and a key with a small-order part added to an honest key (which only
    its holder can sign for, but which not every verifier treats alike)."""
    mixed = crypto_core_ed25519_add(SigningKey.generate("x").public.public, ORDER_8)
    for public in (*SMALL_ORDER, mixed):
        for sig_type in (ED25519, COSIGNATURE_ED25519):
            with pytest.raises(InvalidInput, match=REFUSED):
                VerifyingKey.parse(weak_key("bob", public, sig_type), sig_type=sig_type)
    valid = Bundle.from_bytes(canonical_json(honest))
    with pytest.raises(InvalidInput, match=REFUSED):
        verify_bundle(valid, trusted_nodes=[weak_key("bob")])
    with pytest.raises(InvalidInput, match=REFUSED):
        verify_bundle(valid, trusted_publishers=[weak_key("bob")])
    with pytest.raises(InvalidInput, match=REFUSED):
        verify_bundle(valid, trusted_witnesses=[weak_key("bob", sig_type=COSIGNATURE_ED25519)])


def test_the_cli_refuses_the_forgery_in_one_line(honest, tmp_path):
    path = tmp_path / "forged.json"
    path.write_bytes(canonical_json(_forged(honest)))
    command = [sys.executable, "-c", "from veriml.cli import main; main()", "verify", str(path), "--level", "signed",
               "--node", weak_key("forged-node")]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, env={"VERIML_HOME": str(tmp_path)})
    assert done.returncode == 2  # bad input: one line, no traceback
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and REFUSED in lines[0], done.stderr
    assert "Traceback" not in done.stderr
    assert base64.b64encode(SIGNS_ANYTHING).decode() in path.read_text()  # the forgery really carries it
