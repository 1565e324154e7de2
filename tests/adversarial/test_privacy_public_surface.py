"""Privacy against an unauthenticated reader (issue 11): someone who reads everything a node serves without a key
tries to learn, or confirm a guess of, a request's low-entropy inputs and outputs. Real node processes."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import pytest

from veriml import devnet, examples
from veriml.client import Client
from veriml.codec import tensors_digest
from veriml.identity import SigningKey
from veriml.runtime import OnnxEngine
from veriml.tlog import SignedCheckpoint

# A low-entropy input: one of 16 one-hot vectors. Guessing it takes 16 tries.
GUESSES = [np.eye(16, dtype=np.float32)[i : i + 1] for i in range(16)]
SECRET = 11


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("privacy-net")
    network = devnet.up(root, 2, checkpoint_interval=0.2)
    try:
        model = examples.save(examples.mlp(), tmp_path_factory.mktemp("models") / "mlp.onnx")
        with Client(network.urls, admin_token=network.admin_token) as client:
            client.publish(model, "alice/mlp", SigningKey.generate("alice"), node=network.urls[0])
            bundle = client.infer("alice/mlp", {"x": GUESSES[SECRET]}, verify="logged")
        yield network, model, bundle
    finally:
        devnet.down(root)


def _public_surface(url: str) -> list[bytes]:
    """Every byte an unauthenticated reader can get from a node about its log."""
    with httpx.Client(timeout=10) as http:
        checkpoint_text = http.get(f"{url}/checkpoint").text
        size = SignedCheckpoint.parse(checkpoint_text, "checkpoint").checkpoint.size
        pages = [checkpoint_text.encode()]
        paths = [f"/tile/entries/000.p/{size}", f"/tile/0/000.p/{size}", "/v1/info", "/v1/evidence",
                 "/v1/attestations", "/v1/models"]  # fmt: skip
        paths += [f"/v1/log/entries/{i}" for i in range(size)]
        paths += [f"/v1/log/entries/{i}/bundle" for i in range(size)]
        for path in paths:
            pages.append(http.get(url + path).content)
    return pages


def _spellings(digest_or_bytes: bytes) -> list[bytes]:
    return [
        digest_or_bytes,
        digest_or_bytes.hex().encode(),
        base64.b64encode(digest_or_bytes),
        base64.urlsafe_b64encode(digest_or_bytes).rstrip(b"="),
    ]


def test_a_guessed_low_entropy_input_cannot_be_confirmed_from_anything_public(served):
    network, model, bundle = served
    engine = OnnxEngine()
    blob = model.read_bytes()
    pages = b"\n".join(page for url in network.urls for page in _public_surface(url))
    assert str(bundle.receipt.id).encode() in pages or bundle.receipt.body.input_commitment.value in pages
    for guess in GUESSES:
        inputs = {"x": guess}
        outputs = engine.run(bundle.manifest.body.blob, lambda: blob, inputs)
        # Every way a reader could test a guess: the unsalted digests, the raw tensor bytes, their encodings.
        probes = [tensors_digest(inputs).value, tensors_digest(outputs).value, guess.tobytes(), outputs["y"].tobytes()]
        for probe in probes:
            for spelling in _spellings(probe):
                assert spelling not in pages, "a public page lets a reader confirm a guessed input"


def test_unauthenticated_reader_gets_no_inputs_outputs_or_salt_from_entries(served):
    network, _, bundle = served
    node = bundle.receipt.body.node.vkey
    serving = next(url for url in network.urls if httpx.get(f"{url}/v1/info").json()["node"] == node)
    size = SignedCheckpoint.parse(httpx.get(f"{serving}/checkpoint").text, "checkpoint").checkpoint.size
    for index in range(size):
        entry = httpx.get(f"{serving}/v1/log/entries/{index}").json()
        assert "receipt" in entry and "inputs" not in entry and "outputs" not in entry and "salt" not in entry
        refused = httpx.get(f"{serving}/v1/log/entries/{index}/bundle")
        assert refused.status_code in (401, 403, 404), refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
    assert bundle.salt.hex().encode() not in b"".join(_public_surface(serving))
