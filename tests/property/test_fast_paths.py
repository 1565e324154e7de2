"""The hot path writes signed documents in shortcuts; each must give exactly the bytes the general code gives."""

from __future__ import annotations

import tempfile
from functools import cache
from pathlib import Path

import numpy as np
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from veriml import examples
from veriml.codec import Digest, canonical_json
from veriml.hub import SignedManifest
from veriml.identity import Domain, SigningKey
from veriml.receipts import Bundle, sign_receipt
from veriml.receipts.receipt import MODES
from veriml.runtime import RuntimeFingerprint
from veriml.service.publish import sign_next_version


@cache
def _manifest() -> SignedManifest:
    with tempfile.TemporaryDirectory() as tmp:
        path = examples.save(examples.mlp(), Path(tmp) / "mlp.onnx")
        return sign_next_version(path, name="alice/mlp", latest=None, publisher=SigningKey.generate("alice"))


digests = st.binary(min_size=32, max_size=32).map(lambda b: Digest("sha256", b))
request_ids = st.from_regex(r"[A-Za-z0-9._:-]{1,128}", fullmatch=True)
fingerprints = st.dictionaries(
    st.text(min_size=1, max_size=12), st.one_of(st.text(max_size=20), st.integers(-(2**53) + 1, 2**53 - 1)), max_size=5
).map(lambda extra: RuntimeFingerprint({"engine": "onnxruntime", "provider": "CPU", **extra}))


@given(seed=st.binary(min_size=32, max_size=32), message=st.binary(max_size=2048))
def test_pynacl_signatures_are_cryptographys_bytes(seed, message):
    key = SigningKey.from_seed("example.com/k", seed)
    reference = Ed25519PrivateKey.from_private_bytes(seed)
    assert key.sign_raw(message) == reference.sign(message)
    assert key.sign(Domain.RECEIPT, message) == reference.sign(Domain.RECEIPT.message(message))


@settings(max_examples=60)
@given(
    name=st.from_regex(r"[a-z][a-z0-9.-]{0,20}/[a-z0-9-]{1,20}", fullmatch=True),
    manifest=digests, blob=digests, inputs=digests, outputs=digests, runtime=fingerprints,
    mode=st.sampled_from(MODES), privacy=st.sampled_from(["private", "auditable", "public"]), request_id=request_ids,
)  # fmt: skip
def test_receipt_and_bundle_bytes_are_the_general_canonical_json(
    name, manifest, blob, inputs, outputs, runtime, mode, privacy, request_id
):
    key = SigningKey.generate(name)
    receipt = sign_receipt(key, manifest=manifest, blob=blob, input_commitment=inputs, output_commitment=outputs,
                           runtime=runtime, mode=mode, privacy=privacy, request_id=request_id)  # fmt: skip
    assert receipt.canonical == rfc8785.dumps(receipt.body.to_json()) == canonical_json(receipt.body.to_json())
    bundle = Bundle(
        manifest=_manifest(),
        receipt=receipt,
        salt=bytes(32),
        inputs={"x": np.arange(4, dtype=np.float32)},
        outputs={"y": np.ones((1, 2), np.int64)},
        log_proof="c2sp.org/tlog-proof@v1\nindex 0\n\nx\n",
    )
    assert bundle.to_bytes() == rfc8785.dumps(bundle.to_json())


@given(seed=st.binary(min_size=32, max_size=32), message=st.binary(max_size=512), flip=st.integers(0, 63))
def test_a_remembered_verification_never_passes_another_signature_or_message(seed, message, flip):
    from veriml.errors import VerificationFailed

    key = SigningKey.from_seed("example.com/k", seed)
    signature = key.sign_raw(message)
    key.public.verify_raw(message, signature)
    key.public.verify_raw(message, signature)  # remembered: passes again
    forged = signature[:flip] + bytes([signature[flip] ^ 1]) + signature[flip + 1 :]
    for bad_message, bad_signature in ((message, forged), (message + b"x", signature)):
        try:
            key.public.verify_raw(bad_message, bad_signature)
        except VerificationFailed:
            continue
        raise AssertionError("a changed signature or message verified")
