"""The individual checks on a bundle. Each is small, returns a result, and never raises for a bad bundle."""

from __future__ import annotations

from collections.abc import Callable, Collection

import numpy as np

from veriml.codec import Digest, tensors_digest, tensors_from_json
from veriml.errors import NotFound, RunTooLong, Unavailable, VerimlError
from veriml.hub import compare_outputs
from veriml.identity import VerifyingKey
from veriml.receipts import Bundle, ReceiptLeaf, commit, parse_salt, parse_signed_receipt
from veriml.runtime import Engine, LlamaEngine, validate_inputs
from veriml.runtime.generation import OUTPUT
from veriml.tlog import TlogProof, TrustPolicy
from veriml.verify.report import CheckResult, Status

BlobLoader = Callable[[Digest], bytes]  # raises NotFound when it does not have the blob


def _result(name: str, status: Status, detail: str) -> CheckResult:
    return CheckResult(name, status, detail)


def manifest_signature(bundle: Bundle) -> CheckResult:
    try:
        bundle.manifest.check_signature()
    except VerimlError as exc:
        return _result("manifest.signature", "fail", str(exc))
    return _result("manifest.signature", "pass", f"signed by publisher {bundle.manifest.body.publisher.key_id}")


def receipt_signature(bundle: Bundle) -> CheckResult:
    try:
        bundle.receipt.check_signature()
    except VerimlError as exc:
        return _result("receipt.signature", "fail", str(exc))
    return _result("receipt.signature", "pass", f"signed by node {bundle.receipt.body.node.key_id}")


def trusted_key(name: str, key_id: str, vkey: str, trusted: Collection[str], role: str) -> CheckResult:
    if not trusted:
        return _result(name, "skipped", f"no trusted {role} keys were given")
    if vkey in trusted:
        return _result(name, "pass", f"{role} {key_id} is trusted")
    return _result(name, "fail", f"{role} {key_id} is not one of the {len(trusted)} trusted {role} keys")


def receipt_binding(bundle: Bundle) -> CheckResult:
    receipt, manifest = bundle.receipt.body, bundle.manifest
    if receipt.manifest != manifest.id:
        return _result(
            "receipt.binding", "fail", f"receipt names manifest {receipt.manifest}, bundle has {manifest.id}"
        )
    if receipt.blob != manifest.body.blob:
        return _result(
            "receipt.binding", "fail", f"receipt names blob {receipt.blob}, manifest has {manifest.body.blob}"
        )
    return _result("receipt.binding", "pass", f"receipt is for {manifest.body.ref} ({manifest.id})")


def inputs_signature(bundle: Bundle) -> CheckResult:
    body = bundle.manifest.body
    try:
        validate_inputs(body.inputs, bundle.inputs, max_bytes=1 << 62, allow_nan=body.policy.allow_nan)
    except VerimlError as exc:
        return _result("inputs.signature", "fail", str(exc))
    return _result("inputs.signature", "pass", "inputs match the model's signature")


def tensors_match(name: str, tensors: dict[str, np.ndarray], salt: bytes, claimed: Digest) -> CheckResult:
    """The tensors, salted with the bundle's salt, open the receipt's commitment."""
    try:
        actual = commit(salt, tensors_digest(tensors))
    except VerimlError as exc:
        return _result(name, "fail", str(exc))
    if actual != claimed:
        return _result(name, "fail", f"salted digest is {actual}, receipt commits to {claimed}")
    return _result(name, "pass", f"the bundle's salt and tensors open the receipt's commitment {claimed}")


def blob_digest(bundle: Bundle, load_blob: BlobLoader | None) -> tuple[CheckResult, bytes | None]:
    blob_id = bundle.manifest.body.blob
    if load_blob is None:
        return _result(
            "blob.digest", "skipped", "the model blob is not at hand (give --blob or a home that has it)"
        ), None
    try:
        data = load_blob(blob_id)
    except NotFound:
        return _result("blob.digest", "skipped", f"the model blob {blob_id} is not at hand"), None
    except VerimlError as exc:
        return _result("blob.digest", "fail", str(exc)), None
    actual = Digest.of(data)
    if actual != blob_id:
        return _result("blob.digest", "fail", f"blob bytes hash to {actual}, manifest says {blob_id}"), None
    return _result("blob.digest", "pass", f"{len(data)} bytes hash to {blob_id}"), data


def reexecution(bundle: Bundle, engine: Engine | None, blob: bytes | None) -> CheckResult:
    if engine is None:
        return _result("reexec", "skipped", "re-execution was not asked for")
    if blob is None:
        return _result("reexec", "skipped", "cannot re-execute without the model blob")
    body = bundle.manifest.body
    try:
        theirs, ours = bundle.receipt.body.runtime.runtime_class, engine.runtime_class
    except Unavailable as exc:  # the engine for this format is not installed here
        return _result("reexec", "skipped", str(exc))
    if theirs != ours and body.policy.kind == "exact":
        # Across runtime classes bitwise results are not expected: that is not a disagreement.
        return _result("reexec", "skipped", f"not comparable: receipt ran on {theirs}, this machine is {ours}")
    if isinstance(engine, LlamaEngine):
        return _regeneration(bundle, engine, blob, ours)
    try:
        outputs = engine.run(body.blob, lambda: blob, bundle.inputs)
    except RunTooLong as exc:  # this machine's limit, not the node's doing: nothing is said either way
        return _result("reexec", "skipped", f"re-execution stopped: {exc}")
    except VerimlError as exc:
        return _result("reexec", "fail", f"re-execution failed: {exc}")
    comparison = compare_outputs(body.policy, bundle.outputs, outputs)
    if not comparison.agree:
        return _result("reexec", "fail", f"outputs disagree with a local run: {comparison.detail}")
    return _result("reexec", "pass", f"local run on {ours}: {comparison.detail}")


def _regeneration(bundle: Bundle, engine: LlamaEngine, blob: bytes, runtime_class: str) -> CheckResult:
    """Regenerate token by token against the claimed tokens; a mismatch names the first diverging step and the
    top-2 logit margin there."""
    claimed = bundle.outputs.get(OUTPUT)
    if claimed is None or claimed.dtype != np.int32 or claimed.ndim != 1:
        return _result("reexec", "fail", f"the bundle's outputs have no int32[n] {OUTPUT!r}")
    try:
        replay = engine.replay(bundle.manifest.body.blob, lambda: blob, bundle.inputs, claimed.tolist())
    except VerimlError as exc:
        return _result("reexec", "fail", f"regeneration failed: {exc}")
    if not replay.agree:
        return _result("reexec", "fail", f"tokens disagree with a local regeneration: {replay.detail}")
    return _result("reexec", "pass", f"local regeneration on {runtime_class}: {replay.detail}")


def log_inclusion(bundle: Bundle, witnesses: tuple[VerifyingKey, ...], quorum: int) -> CheckResult:
    """The receipt's leaf is in the node's log, under a checkpoint signed by the node (the log's origin is the
    node key's name) and cosigned by at least `quorum` of the trusted witnesses."""
    if bundle.log_proof is None:
        return _result("log.inclusion", "skipped", "the bundle carries no log inclusion proof")
    node = bundle.receipt.body.node
    try:
        proof = TlogProof.parse(bundle.log_proof, "log proof")
        cosigners = proof.verify(ReceiptLeaf.of(bundle.receipt).to_bytes(), TrustPolicy(node, witnesses, quorum))
    except VerimlError as exc:
        return _result("log.inclusion", "fail", str(exc))
    checkpoint = proof.checkpoint.checkpoint
    witnessed = (
        f"cosigned by {len(cosigners)} trusted witness(es), {quorum} required "
        "(counted by distinct key, never the log's own)"
    )
    return _result(
        "log.inclusion",
        "pass",
        f"entry {proof.index} of log {checkpoint.origin} at size {checkpoint.size}; {witnessed}",
    )


def attestations(bundle: Bundle, required_nodes: int, trusted: Collection[str] = ()) -> CheckResult:
    """Other nodes' signed receipts for the same manifest and input, whose outputs agree with the bundle's
    under the manifest's policy (what a `quorum:K` inference carries). Nodes are counted by their Ed25519 public
    key bytes, so a key repeated or renamed is one node. Distinct keys prove distinct nodes only if the keys are
    trusted: with `trusted` given, a receipt by any other key fails the check."""
    if not bundle.attestations:
        detail = "the bundle carries no quorum attestations"
        return _result("attestations", "skipped" if required_nodes <= 1 else "fail", detail)
    receipt, policy = bundle.receipt.body, bundle.manifest.body.policy
    nodes = {receipt.node.public}
    try:
        for number, item in enumerate(bundle.attestations, 1):
            other = parse_signed_receipt(item.get("receipt")).verified()
            salt = parse_salt(item.get("salt"), f"attestation {number} salt")
            outputs = tensors_from_json(item.get("outputs"), f"attestation {number} outputs")
            body = other.body
            if trusted and body.node.vkey not in trusted:
                return _result("attestations", "fail", f"attestation {number} is by untrusted node {body.node.key_id}")
            if body.node.public in nodes:
                detail = f"attestation {number} repeats a node key already counted ({body.node.key_id})"
                return _result("attestations", "fail", detail)
            nodes.add(body.node.public)
            inputs_digest = tensors_digest(bundle.inputs)
            if body.manifest != receipt.manifest or commit(salt, inputs_digest) != body.input_commitment:
                return _result("attestations", "fail", f"attestation {number} is for another model or input")
            if commit(salt, tensors_digest(outputs)) != body.output_commitment:
                return _result("attestations", "fail", f"attestation {number}: outputs do not match its receipt")
            theirs, ours = body.runtime.runtime_class, receipt.runtime.runtime_class
            if policy.kind == "exact" and theirs != ours:
                detail = f"attestation {number} is not comparable: it ran on {theirs}, the receipt on {ours}"
                return _result("attestations", "fail", detail)
            comparison = compare_outputs(policy, bundle.outputs, outputs)
            if not comparison.agree:
                return _result("attestations", "fail", f"node {body.node.key_id} disagrees: {comparison.detail}")
    except (VerimlError, AttributeError) as exc:
        return _result("attestations", "fail", f"malformed attestation: {exc}")
    if len(nodes) < required_nodes:
        return _result("attestations", "fail", f"{len(nodes)} distinct nodes agree, {required_nodes} required")
    who = "trusted nodes" if trusted else "node keys (none named as trusted: one operator could hold them all)"
    return _result("attestations", "pass", f"{len(nodes)} distinct {who} agree under {policy.describe()}")


def zk_proof(bundle: Bundle, load_blob: BlobLoader | None, require_ceremony_srs: bool) -> CheckResult:
    """The proof verifies under the verification key named in the ZK document the model's publisher signed;
    its public instances are exactly the circuit's on the bundle's inputs, taken in the model's declared input
    order (recomputed here); and the bundle's outputs are exactly the proven fixed-point outputs, k / 2^scale
    per output in the declared dtype (`ezkl_pipeline.output_values`), bit for bit. A proven result is the
    circuit's: a float runtime's outputs differ from it by quantization, and no bound on that difference keeps
    a node from shifting outputs within it."""
    if bundle.zk_proof is None:
        return _result("zk.proof", "skipped", "the bundle carries no zero-knowledge proof")
    if load_blob is None:
        return _result(
            "zk.proof", "skipped", "the verification key and SRS are not at hand (give a home that has them)"
        )
    import json
    import tempfile
    from pathlib import Path

    from veriml.zk import parse_signed_zk_document
    from veriml.zk.ezkl_pipeline import expected_instances, output_count, output_values, verify

    manifest = bundle.manifest.body
    try:
        document = parse_signed_zk_document(bundle.zk_proof.get("document")).verified()
        body = document.body
        if body.publisher != manifest.publisher:
            return _result("zk.proof", "fail", "the ZK document is not signed by the model's publisher")
        if body.manifest != bundle.manifest.id:
            return _result("zk.proof", "fail", f"the ZK document is for manifest {body.manifest}")
        if require_ceremony_srs and body.srs_kind != "ceremony":
            return _result("zk.proof", "fail", "the proof rests on a development SRS; a ceremony SRS is required")
        proof = bundle.zk_proof.get("proof")
        with tempfile.TemporaryDirectory(prefix="veriml-zkverify-") as tmp:
            paths = {}
            for name in ("settings", "vk", "srs", "compiled"):
                data = load_blob(body.artifacts[name])
                if Digest.of(data) != body.artifacts[name]:
                    return _result("zk.proof", "fail", f"zk artifact {name} does not hash to its id")
                paths[name] = Path(tmp) / name
                paths[name].write_bytes(data)
            verify(proof, paths["settings"], paths["vk"], paths["srs"], Path(tmp) / "verify")
            settings = json.loads(paths["settings"].read_text())
            input_names = [spec.name for spec in manifest.inputs]
            expected = expected_instances(bundle.inputs, input_names, paths["compiled"], Path(tmp) / "witness")
        instances = proof["instances"][0]
        outputs = output_count(settings)
        if len(instances) != len(expected) or outputs > len(instances):
            return _result(
                "zk.proof", "fail", f"the proof has {len(instances)} public values, the circuit {len(expected)}"
            )
        if instances[: len(instances) - outputs] != expected[: len(expected) - outputs]:
            what = "hash" if body.input_visibility == "hashed" else "values"
            return _result("zk.proof", "fail", f"the proof's public input {what} are not the bundle's inputs")
        if instances[len(instances) - outputs :] != expected[len(expected) - outputs :]:
            return _result(
                "zk.proof", "fail", "the proof's public outputs are not the circuit's on the bundle's inputs"
            )
        proven = output_values(instances[len(instances) - outputs :], settings, manifest.outputs)
    except NotFound as exc:
        return _result("zk.proof", "skipped", f"zk artifacts not at hand: {exc}")
    except (VerimlError, KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        return _result("zk.proof", "fail", f"{exc}")
    mismatch = _first_difference(bundle.outputs, proven, settings["model_output_scales"])
    if mismatch:
        return _result("zk.proof", "fail", mismatch)
    scales = ", ".join(
        f"{name} 2^-{scale}" for name, scale in zip(proven, settings["model_output_scales"], strict=True)
    )
    return _result(
        "zk.proof",
        "pass",
        f"EZKL proof verifies under the publisher's key ({body.srs_kind} SRS, logrows {body.logrows}); its public "
        f"instances are exactly the circuit's on the bundle's inputs; the outputs are exactly the proven fixed-point "
        f"values (quantum {scales})",
    )


def _first_difference(claimed: dict[str, np.ndarray], proven: dict[str, np.ndarray], scales: list[int]) -> str | None:
    """Why the bundle's outputs are not bit for bit the proven ones, or None when they are."""
    if set(claimed) != set(proven):
        return f"the bundle's outputs {sorted(claimed)} are not the proven outputs {sorted(proven)}"
    for (name, value), scale in zip(proven.items(), scales, strict=True):
        mine = claimed[name]
        if mine.dtype != value.dtype or mine.shape != value.shape:
            return (
                f"output {name!r} is not the proven value: the bundle has {mine.dtype}{list(mine.shape)}, "
                f"the proof {value.dtype}{list(value.shape)}"
            )
        if mine.tobytes() != value.tobytes():
            bits = f"u{value.dtype.itemsize}"
            index = int(np.flatnonzero(mine.reshape(-1).view(bits) != value.reshape(-1).view(bits))[0])
            got, want = float(mine.reshape(-1)[index]), float(value.reshape(-1)[index])
            quanta = (got - want) * 2.0**scale
            return (
                f"output {name!r} is not the proven value: element {index} is {got!r} in the bundle, {want!r} in "
                f"the proof ({quanta:+.3g} quanta of 2^-{scale}); a proven result's outputs must be the proven "
                f"fixed-point values exactly"
            )
    return None


def not_yet_checkable(name: str, present: bool, what: str) -> CheckResult:
    if not present:
        return _result(name, "skipped", f"the bundle carries no {what}")
    return _result(name, "skipped", f"this verifier cannot check a {what} yet")
