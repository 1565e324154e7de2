from dataclasses import replace

import numpy as np
import pytest

from tests.helpers import resign
from veriml.codec import b64decode, b64encode
from veriml.errors import InvalidInput
from veriml.identity import SigningKey
from veriml.receipts import Bundle
from veriml.verify import verify_bundle


def statuses(report):
    return {check.name: check.status for check in report.checks}


def test_fresh_bundle_verifies_at_every_level(service, bundle, publisher):
    trusted = {"trusted_publishers": [publisher.public.vkey], "trusted_nodes": [service.node_key.public.vkey]}
    assert verify_bundle(bundle, **trusted).verdict == "verified"
    assert verify_bundle(bundle, level="logged", **trusted).verdict == "verified"
    report = verify_bundle(bundle, level="reexecuted", load_blob=service.hub.blobs.read_verified, **trusted)
    assert report.verdict == "verified"
    assert "1 trusted publisher key(s), 1 trusted node key(s)" in report.trust.describe()
    assert {statuses(report)[n] for n in ("reexec", "blob.digest", "log.inclusion")} == {"pass"}
    # Checks a later layer adds are reported as not run, never as passed.
    assert {statuses(report)[n] for n in ("attestations", "zk.proof")} == {"skipped"}


def test_a_bundle_checked_against_no_trust_root_is_unanchored_not_verified(service, bundle):
    # Attack 8 (docs/threat-model.md): anyone can make a self-consistent bundle with fresh keys.
    report = verify_bundle(bundle, level="logged")
    assert report.consistent and not report.verified
    assert report.verdict == "unanchored"
    assert report.to_json()["relative_to"].startswith("no trusted keys")
    forger = SigningKey.generate("veriml.local/node-forger")
    forged = verify_bundle(resign(bundle, forger), level="signed")
    assert forged.verdict == "unanchored"  # reads exactly like the honest one: only trust roots tell them apart
    anchored = verify_bundle(resign(bundle, forger), trusted_nodes=[service.node_key.public.vkey])
    assert anchored.verdict == "failed" and anchored.check("receipt.node").status == "fail"


def test_logged_level_needs_the_inclusion_proof(service, published, x):
    logged = service.infer("alice/mlp", x)
    assert logged.log_proof is not None  # every logged answer carries its proof under its batch's checkpoint
    assert verify_bundle(logged, level="logged").consistent
    unproven = replace(logged, log_proof=None)
    report = verify_bundle(unproven, level="logged")
    assert report.verdict == "incomplete" and report.check("log.inclusion").status == "skipped"
    assert verify_bundle(unproven).consistent  # level "signed" does not ask for it


def test_log_proof_from_another_log_or_entry_fails(service, bundle, x):
    other = service.infer("alice/mlp", x, prove=True)
    swapped = Bundle.from_json({**bundle.to_json(), "log_proof": other.log_proof})
    report = verify_bundle(swapped, level="logged")
    assert report.verdict == "failed"
    assert "does not lead to the root" in report.check("log.inclusion").detail
    stranger = resign(bundle, SigningKey.generate("veriml.local/node-stranger"))
    moved = Bundle.from_json({**stranger.to_json(), "log_proof": bundle.log_proof})
    report = verify_bundle(moved, level="logged")
    assert "is not the log's key name" in report.check("log.inclusion").detail


def test_witness_cosignatures_and_quorum(service, published, x, tmp_path):
    from veriml.tlog import Witness

    bundle, index = service.infer_logged("alice/mlp", x)
    witness = Witness(tmp_path / "w.sqlite", SigningKey.generate("witness.example/w1"),
                      {service.log.origin: [service.node_key.public]})  # fmt: skip
    signed = service.log.sign_checkpoint()
    _, refusals = service.log.collect_cosignatures(signed, [(witness.public, witness.add_checkpoint)])
    assert refusals == {}
    witnessed = service.attach_proof(bundle, index)
    trusted = [witness.public.vkey]
    report = verify_bundle(witnessed, level="logged", trusted_witnesses=trusted)
    assert report.consistent and "cosigned by 1 trusted witness(es), 1 required" in report.check("log.inclusion").detail
    stranger = SigningKey.generate("witness.example/w2").cosigner_public.vkey
    report = verify_bundle(witnessed, level="logged", trusted_witnesses=[stranger])
    assert report.verdict == "failed" and "cosigned by 0 of the trusted witnesses, 1 required" in str(report.failures())
    with pytest.raises(InvalidInput, match="witness quorum 2"):
        verify_bundle(witnessed, level="logged", trusted_witnesses=trusted, witness_quorum=2)
    with pytest.raises(InvalidInput, match="expected 0x04"):
        verify_bundle(witnessed, level="logged", trusted_witnesses=[service.node_key.public.vkey])
    witness.close()


def test_bundle_file_round_trips_byte_for_byte(bundle, tmp_path):
    path = tmp_path / "b.json"
    bundle.save(path)
    loaded = Bundle.load(path)
    assert loaded.to_bytes() == path.read_bytes()
    assert verify_bundle(loaded).consistent


def flip_char_inside(data: bytes, marker: bytes, offset: int = 8) -> bytes:
    """Change one base64 or hex character that follows `marker` to another of its kind."""
    at = data.index(marker) + len(marker) + offset
    old = chr(data[at])
    new = "B" if old != "B" else "C"
    if old in "0123456789abcdef" and marker.endswith(b"sha256:"):
        new = "0" if old != "0" else "1"
    return data[:at] + new.encode() + data[at + 1 :]


@pytest.mark.parametrize(
    ("marker", "failing"),
    [
        (b'"inputs":{"x":{"data":"', "inputs.digest"),
        (b'"outputs":{"y":{"data":"', "outputs.digest"),
        (b'"receipt":{"body":{"blob":"sha256:', "receipt.signature"),
        (b'"output_commitment":"sha256:', "receipt.signature"),
        (b'"manifest":{"body":{"blob":"sha256:', "manifest.signature"),
        (b'"receipt":{"body":', None),  # handled below: signature of the receipt
    ],
)
def test_a_changed_byte_in_each_part_fails_a_named_check(bundle, marker, failing):
    data = bundle.to_bytes()
    if failing is None:
        signature_at = data.index(b'"signature":"', data.index(marker)) + len(b'"signature":"')
        data = data[:signature_at] + (b"A" if data[signature_at] != ord("A") else b"B") + data[signature_at + 1 :]
        failing = "receipt.signature"
    else:
        data = flip_char_inside(data, marker)
    report = verify_bundle(Bundle.from_bytes(data))
    assert report.verdict == "failed"
    assert statuses(report)[failing] == "fail"


def test_manifest_signature_byte_flip(bundle):
    obj = bundle.to_json()
    signature = bytearray(b64decode(obj["manifest"]["signature"], "sig"))
    signature[10] ^= 0x01
    obj["manifest"]["signature"] = b64encode(bytes(signature))
    report = verify_bundle(Bundle.from_json(obj))
    assert statuses(report)["manifest.signature"] == "fail"
    # The receipt still names the original manifest id, which is what the publisher signed.
    assert report.verdict == "failed"


def test_bundle_re_signed_by_another_node_key(bundle):
    stranger = SigningKey.generate("veriml-node")
    forged = resign(bundle, stranger)
    # Self-consistent, so only a trust decision can catch it: name the node keys you trust.
    assert verify_bundle(forged).consistent
    trusted = [bundle.receipt.body.node.vkey]
    report = verify_bundle(forged, trusted_nodes=trusted)
    assert report.verdict == "failed"
    assert "is not one of the 1 trusted node keys" in report.check("receipt.node").detail
    assert verify_bundle(bundle, trusted_nodes=trusted).consistent


def test_receipt_signature_swapped_in_from_another_key(bundle):
    stranger = SigningKey.generate("veriml-node")
    obj = bundle.to_json()
    obj["receipt"]["signature"] = resign(bundle, stranger).to_json()["receipt"]["signature"]
    report = verify_bundle(Bundle.from_json(obj))
    assert report.check("receipt.signature").status == "fail"


def test_untrusted_publisher_fails(bundle):
    other = SigningKey.generate("alice").public.vkey
    report = verify_bundle(bundle, trusted_publishers=[other])
    assert report.check("manifest.publisher").status == "fail" and report.verdict == "failed"


def test_lying_node_passes_signatures_but_fails_reexecution(service, bundle):
    wrong = {"y": bundle.outputs["y"] + np.float32(1e-3)}
    lie = resign(bundle, service.node_key, outputs=wrong)
    assert verify_bundle(lie).consistent  # signatures alone cannot tell
    report = verify_bundle(lie, level="reexecuted", load_blob=service.hub.blobs.read_verified)
    assert report.verdict == "failed"
    assert "outputs disagree with a local run" in report.check("reexec").detail


def test_reexecution_without_the_blob_is_incomplete_not_verified(bundle):
    report = verify_bundle(bundle, level="reexecuted")
    assert report.verdict == "incomplete"
    assert report.check("blob.digest").status == "skipped"
    assert report.check("reexec").status == "skipped"


def test_a_damaged_blob_fails_the_blob_check(service, bundle):
    path = service.hub.blobs.path(bundle.manifest.body.blob)
    path.write_bytes(path.read_bytes()[:-1])
    report = verify_bundle(bundle, level="reexecuted", load_blob=service.hub.blobs.read_verified)
    assert report.check("blob.digest").status == "fail"


def test_unknown_level_and_malformed_bundles(bundle):
    with pytest.raises(InvalidInput, match="verification level 'proven-ish'"):
        verify_bundle(bundle, level="proven-ish")
    obj = bundle.to_json()
    for broken, message in [
        ({**obj, "extra": 1}, "bundle: expected exactly the fields"),
        ({**obj, "format_version": 9}, "format_version 9 is not supported"),
        ({**obj, "log_proof": 5}, "log_proof must be text or null"),
    ]:
        with pytest.raises(InvalidInput, match=message):
            Bundle.from_json(broken)
    receipt = dict(obj["receipt"])
    receipt["body"] = {**receipt["body"], "mode": "trust-me"}
    with pytest.raises(InvalidInput, match="mode must be one of"):
        Bundle.from_json({**obj, "receipt": receipt})


def test_not_comparable_runtime_is_skipped_not_disagreement(service, bundle):
    from veriml.runtime import RuntimeFingerprint

    other_runtime = RuntimeFingerprint({**bundle.receipt.body.runtime.fields, "engine_version": "0.0.1"})
    from dataclasses import replace

    from veriml.identity import Signed

    receipt = replace(bundle.receipt.body, runtime=other_runtime)
    moved = replace(bundle, receipt=Signed.sign(receipt, service.node_key), log_proof=None)
    report = verify_bundle(moved, level="reexecuted", load_blob=service.hub.blobs.read_verified)
    assert report.check("reexec").status == "skipped"
    assert "not comparable" in report.check("reexec").detail
    assert report.verdict == "incomplete"


def test_quorum_attestations_count_only_trusted_nodes(service, bundle):
    from dataclasses import replace as with_fields

    from veriml.client.protocol import attestation

    other = SigningKey.generate("veriml.local/node-other")
    agreeing = with_fields(bundle, attestations=(attestation(resign(bundle, other)),))
    primary = bundle.receipt.body.node.vkey
    assert verify_bundle(agreeing, agreeing_nodes=2).consistent  # distinct keys, none named trusted
    assert "none named as trusted" in verify_bundle(agreeing, agreeing_nodes=2).check("attestations").detail
    report = verify_bundle(agreeing, agreeing_nodes=2, trusted_nodes=[primary])
    assert report.verdict == "failed" and "untrusted node" in report.check("attestations").detail
    assert verify_bundle(agreeing, agreeing_nodes=2, trusted_nodes=[primary, other.public.vkey]).consistent
    assert verify_bundle(bundle, agreeing_nodes=2).verdict == "failed"  # a quorum was asked, none carried
    lying = with_fields(bundle, attestations=(attestation(resign(bundle, other, {"y": bundle.outputs["y"] + 1})),))
    assert "disagrees" in verify_bundle(lying, agreeing_nodes=2).check("attestations").detail
