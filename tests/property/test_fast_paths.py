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
from veriml.identity import Domain, SigningKey, VerifyingKey
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


L = 2**252 + 27742317777372353535851937790883648493  # the order of Ed25519's prime subgroup


def _small_order_r_signature(seed: bytes, message: bytes) -> bytes:
    """A signature only the key's holder can make, with R the neutral point: S = k * a satisfies [S]B = R + [k]A.
    OpenSSL accepts it; libsodium refuses any R of small order."""
    import hashlib

    digest = hashlib.sha512(seed).digest()
    a = int.from_bytes(digest[:32], "little") & ((1 << 254) - 8) | (1 << 254)
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
    neutral = (1).to_bytes(32, "little")
    k = int.from_bytes(hashlib.sha512(neutral + public + message).digest(), "little") % L
    return neutral + (k * a % L).to_bytes(32, "little")


@given(seed=st.binary(min_size=32, max_size=32), message=st.binary(max_size=512), flip=st.integers(0, 511))
def test_verification_gives_openssls_verdict(seed, message, flip):
    """Signatures are checked with libsodium first and OpenSSL when libsodium refuses: the verdict is OpenSSL's on
    honest signatures, on signatures one bit away, and on the small-order-R signatures libsodium alone refuses."""
    from cryptography.exceptions import InvalidSignature

    from veriml.errors import VerificationFailed

    key = SigningKey.from_seed("example.com/k", seed)
    reference = Ed25519PrivateKey.from_private_bytes(seed).public_key()
    honest = key.sign_raw(message)
    flipped = bytearray(honest)
    flipped[flip // 8] ^= 1 << (flip % 8)
    for signature in (honest, bytes(flipped), _small_order_r_signature(seed, message)):
        try:
            reference.verify(signature, message)
            expected = True
        except InvalidSignature:
            expected = False
        try:
            VerifyingKey.from_public_bytes("example.com/k", key.public.public).verify_raw(message, signature)
            verdict = True
        except VerificationFailed:
            verdict = False
        assert verdict == expected


def test_the_small_order_r_signature_is_one_openssl_accepts():
    seed, message = bytes(range(32)), b"message"
    Ed25519PrivateKey.from_private_bytes(seed).public_key().verify(_small_order_r_signature(seed, message), message)


# Tensor names as users' models may name them: ASCII, accents, high-BMP (past U+E000, where JCS's UTF-16 order is not
# code point order) and astral characters.
tensor_names = st.text(
    st.sampled_from("abxyz_.-0é\u00ff\ue000\uffef\U0001f600\u4e2d"), min_size=1, max_size=6
)  # fmt: skip
small_arrays = st.sampled_from(["float32", "int64", "uint8", "bool", "float16"]).flatmap(
    lambda dtype: st.lists(st.integers(0, 3), max_size=3).flatmap(
        lambda shape: st.binary(min_size=int(np.prod(shape)) * np.dtype(dtype).itemsize,
                                max_size=int(np.prod(shape)) * np.dtype(dtype).itemsize).map(
            lambda raw: np.frombuffer(raw, dtype=dtype).copy().reshape(shape) if dtype != "bool"
            else (np.frombuffer(raw, np.uint8) & 1).astype(bool).reshape(shape))
    )
)  # fmt: skip
tensor_maps = st.dictionaries(tensor_names, small_arrays, min_size=1, max_size=4)


@settings(max_examples=150)
@given(tensors=tensor_maps)
def test_tensors_encoded_once_are_the_general_digest_and_json(tensors):
    from veriml.codec import encode_tensors, tensors_digest, tensors_to_json
    from veriml.codec.tensor import tensor_digest

    encoded = encode_tensors(tensors)
    reference = {name: str(tensor_digest(array)) for name, array in tensors.items()}
    assert encoded.digest == tensors_digest(tensors) == Digest.of(rfc8785.dumps(reference))
    assert encoded.json == rfc8785.dumps(tensors_to_json(tensors))


@settings(max_examples=60)
@given(inputs=tensor_maps, outputs=tensor_maps, salt=st.binary(min_size=32, max_size=32),
       privacy=st.sampled_from(["private", "auditable", "public"]),
       log_proof=st.one_of(st.none(), st.text(max_size=40)),
       attestations=st.lists(st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2), max_size=2),
       zk_proof=st.one_of(st.none(), st.dictionaries(st.text(max_size=5), st.integers(0, 9), max_size=2)))  # fmt: skip
def test_bundles_and_log_extras_put_together_are_the_general_canonical_json(
    inputs, outputs, salt, privacy, log_proof, attestations, zk_proof
):
    from veriml.codec import encode_tensors, tensors_to_json
    from veriml.service.service import log_extra

    key = SigningKey.generate("node.example")
    receipt = sign_receipt(key, manifest=Digest.of(b"m"), blob=Digest.of(b"b"), input_commitment=Digest.of(b"i"),
                           output_commitment=Digest.of(b"o"), runtime=RuntimeFingerprint({"engine": "onnxruntime"}),
                           privacy=privacy)  # fmt: skip
    encoded_inputs, encoded_outputs = encode_tensors(inputs), encode_tensors(outputs)
    extra = log_extra(receipt, salt, encoded_inputs, encoded_outputs, privacy)
    expected = {"receipt": receipt.to_json()}
    if privacy != "private":
        expected.update(salt=salt.hex(), inputs=tensors_to_json(inputs), outputs=tensors_to_json(outputs))
    assert extra == rfc8785.dumps(expected)
    bundle = Bundle(manifest=_manifest(), receipt=receipt, salt=salt, inputs=inputs, outputs=outputs,
                    log_proof=log_proof, attestations=tuple(attestations), zk_proof=zk_proof,
                    encoded_inputs=encoded_inputs, encoded_outputs=encoded_outputs)  # fmt: skip
    assert bundle.to_bytes() == rfc8785.dumps(bundle.to_json())
    # An encoding kept for other tensors is never written for these ones.
    other = Bundle(manifest=_manifest(), receipt=receipt, salt=salt, inputs=outputs, outputs=inputs,
                   encoded_inputs=encoded_inputs, encoded_outputs=encoded_outputs)  # fmt: skip
    assert other.to_bytes() == rfc8785.dumps(other.to_json())
    # Nor for these tensors changed in place after they were encoded (an attack script's forgery, a reused buffer).
    for array in list(inputs.values()) + list(outputs.values()):
        if array.size:
            array.reshape(-1).view(np.uint8)[0] ^= 1  # one bit of the data: a different value of every dtype
            break
    else:
        next(iter(inputs.values())).shape = (0,) * (next(iter(inputs.values())).ndim + 1)
    assert bundle.to_bytes() == rfc8785.dumps(bundle.to_json())


@given(signature=st.binary(min_size=64, max_size=64))
def test_a_signed_documents_copy_never_keeps_the_originals_cached_bytes_or_id(signature):
    from dataclasses import replace

    key = SigningKey.generate("node.example")
    digest = Digest.of(b"d")
    receipt = sign_receipt(key, manifest=digest, blob=digest, input_commitment=digest, output_commitment=digest,
                           runtime=RuntimeFingerprint({"engine": "onnxruntime"}))  # fmt: skip
    receipt.canonical_json(), receipt.id  # made and kept
    forged = replace(receipt, signature=signature)
    assert forged.canonical_json() == rfc8785.dumps(forged.to_json())
    other = replace(receipt, canonical=receipt.canonical + b" ")
    assert other.id == Digest.of(other.canonical) != receipt.id
