"""Proven inference with the real prover (EZKL, offline): setup per model version, a publisher-signed ZK
document, a proof that verifies under its key, and refusals for every way a proof can be wrong."""

import copy
import json
import os
from dataclasses import replace

import numpy as np
import pytest

from veriml.errors import PermissionDenied
from veriml.identity import SigningKey
from veriml.receipts import Bundle
from veriml.verify import verify_bundle
from veriml.zk import ZkDocument, sign_zk_document


@pytest.fixture(scope="module")
def proven(tmp_path_factory):
    from veriml import examples
    from veriml.service import Home, Service

    root = tmp_path_factory.mktemp("zk")
    os.environ["EZKL_REPO_PATH"] = str(root / "ezkl")
    home = Home(root / "home")
    publisher = SigningKey.generate("alice")
    publisher.save(home.publisher_key_path)
    service = Service(home)
    service.publish(examples.save(examples.mlp(), root / "mlp.onnx"), name="alice/mlp")
    document = service.zk_setup("alice/mlp")
    x = {"x": np.random.default_rng(4).standard_normal((1, 16)).astype(np.float32)}
    bundle = service.prove(service.infer("alice/mlp", x, prove=True, circuit=True))
    yield service, document, bundle
    service.close()


def test_a_proven_bundle_verifies_without_running_the_model(proven):
    service, document, bundle = proven
    loaded = Bundle.from_bytes(bundle.to_bytes())
    report = verify_bundle(loaded, level="proven", load_blob=service.hub.blobs.read_verified)
    assert report.consistent, report.failures()
    detail = report.check("zk.proof").detail
    assert "development SRS" in detail and "logrows" in detail
    assert report.check("reexec").status == "skipped"  # a proof stands in for re-execution
    assert document.body.srs_kind == "development" and document.body.shape_bindings == {"N": 1}
    strict = verify_bundle(loaded, level="proven", load_blob=service.hub.blobs.read_verified, require_ceremony_srs=True)
    assert "a ceremony SRS is required" in strict.check("zk.proof").detail


def test_without_the_verification_key_at_hand_proven_is_incomplete(proven):
    _, _, bundle = proven
    assert verify_bundle(bundle, level="proven").verdict == "incomplete"


def test_wrong_proofs_and_documents_fail(proven):
    service, document, bundle = proven
    load = service.hub.blobs.read_verified

    tampered = copy.deepcopy(bundle.zk_proof)
    instances = tampered["proof"]["instances"][0]
    instances[-1] = instances[-2]  # claim another output value
    report = verify_bundle(Bundle.from_json({**bundle.to_json(), "zk_proof": tampered}), level="proven", load_blob=load)
    assert report.check("zk.proof").status == "fail"

    forged_outputs = {"y": bundle.outputs["y"] + np.float32(1.0)}
    other = replace(bundle, outputs=forged_outputs)
    assert "is not the proven value" in verify_bundle(other, level="proven", load_blob=load).check("zk.proof").detail

    mallory = SigningKey.generate("alice")
    swapped = ZkDocument(**{**{f: getattr(document.body, f) for f in document.body.__slots__ if f != "publisher"},
                            "publisher": mallory.public})  # fmt: skip
    foreign = {**bundle.zk_proof, "document": sign_zk_document(swapped, mallory).to_json()}
    report = verify_bundle(Bundle.from_json({**bundle.to_json(), "zk_proof": foreign}), level="proven", load_blob=load)
    assert "not signed by the model's publisher" in report.check("zk.proof").detail

    with pytest.raises(PermissionDenied, match="only the publisher"):
        service.zk_setup("alice/mlp", publisher=mallory)


def test_a_proven_result_is_the_circuits_exactly_and_audits_agree_with_it(proven):
    service, document, bundle = proven
    receipt = bundle.receipt.body
    assert receipt.mode == "proven" and receipt.runtime.fields["engine"] == "ezkl"
    load = service.hub.blobs.read_verified
    # Every output is an integer over 2^scale: the fixed-point value the proof carries, not onnxruntime's float.
    scale = 2.0 ** json.loads(load(document.body.artifacts["settings"]))["model_output_scales"][0]
    assert np.array_equal(np.round(bundle.outputs["y"] * scale), bundle.outputs["y"] * scale)
    one_ulp = replace(bundle, outputs={"y": np.nextafter(bundle.outputs["y"], np.float32(np.inf))})
    assert "is not the proven value" in verify_bundle(one_ulp, level="proven", load_blob=load).check("zk.proof").detail
    # An auditor recomputes a proven receipt with the circuit, bit for bit.
    attestation = service.attest(bundle.manifest, bundle.receipt, bundle.salt, bundle.inputs, bundle.outputs)
    assert attestation.body.verdict == "agree", attestation.body.detail


def test_a_proof_for_another_input_fails(proven):
    service, _, bundle = proven
    other = {"x": bundle.inputs["x"] + np.float32(0.5)}
    moved = replace(bundle, inputs=other)
    report = verify_bundle(moved, level="proven", load_blob=service.hub.blobs.read_verified)
    assert "public input values are not the bundle's inputs" in report.check("zk.proof").detail


def test_a_proof_checked_with_another_models_verification_key_fails(proven, tmp_path):
    from veriml import examples

    service, document, bundle = proven
    srs = service.hub.blobs.path(document.body.artifacts["srs"])  # same size: reuse the SRS file
    service.publish(examples.save(examples.mlp(seed=9), tmp_path / "other.onnx"), name="alice/other")
    other = service.zk_setup("alice/other", srs=srs)
    publisher = service.home.publisher_key()
    fields = {f: getattr(document.body, f) for f in document.body.__slots__}
    fields["artifacts"] = {**document.body.artifacts, "vk": other.body.artifacts["vk"]}
    swapped = sign_zk_document(ZkDocument(**fields), publisher)
    forged = {**bundle.zk_proof, "document": swapped.to_json()}
    report = verify_bundle(Bundle.from_json({**bundle.to_json(), "zk_proof": forged}), level="proven",
                           load_blob=service.hub.blobs.read_verified)  # fmt: skip
    assert report.check("zk.proof").status == "fail"
    assert "does not verify" in report.check("zk.proof").detail


def test_evm_verifier_and_calldata_are_written(proven, tmp_path):
    service, _, bundle = proven
    source = service.zk_evm_verifier("alice/mlp", tmp_path / "Verifier.sol")
    assert "contract Halo2Verifier" in source.read_text()
    calldata = service.zk_evm_calldata(bundle)
    assert len(calldata) > 4 + 32 * 24  # selector, proof, and the 24 public values


def test_private_inputs_are_hashed_and_the_proof_still_verifies(proven, tmp_path):
    from veriml import examples

    service, document, _ = proven
    srs = service.hub.blobs.path(document.body.artifacts["srs"])
    service.publish(examples.save(examples.mlp(seed=3), tmp_path / "private.onnx"), name="alice/private")
    private = service.zk_setup("alice/private", srs=srs, input_visibility="hashed")
    assert private.body.input_visibility == "hashed"
    x = {"x": np.random.default_rng(8).standard_normal((1, 16)).astype(np.float32)}
    bundle = service.prove(service.infer("alice/private", x, prove=True, circuit=True))
    report = verify_bundle(bundle, level="proven", load_blob=service.hub.blobs.read_verified)
    assert report.consistent, report.failures()
    # The hash binds the private inputs: the same proof on other inputs fails, exactly.
    nudged = {"x": bundle.inputs["x"].copy()}
    nudged["x"][0, 1] += np.float32(0.01)
    moved = replace(bundle, inputs=nudged)
    detail = verify_bundle(moved, level="proven", load_blob=service.hub.blobs.read_verified).check("zk.proof").detail
    assert "public input hash are not the bundle's inputs" in detail


@pytest.mark.slow
def test_cnn_end_to_end(tmp_path):
    from veriml import examples
    from veriml.service import Home, Service

    os.environ["EZKL_REPO_PATH"] = str(tmp_path / "ezkl")
    home = Home(tmp_path / "home")
    SigningKey.generate("alice").save(home.publisher_key_path)
    with Service(home) as service:
        service.publish(examples.save(examples.cnn(), tmp_path / "cnn.onnx"), name="alice/cnn")
        service.zk_setup("alice/cnn")
        x = {"x": np.random.default_rng(1).standard_normal((1, 1, 28, 28)).astype(np.float32)}
        bundle = service.prove(service.infer("alice/cnn", x, prove=True, circuit=True))
        assert verify_bundle(bundle, level="proven", load_blob=service.hub.blobs.read_verified).consistent
