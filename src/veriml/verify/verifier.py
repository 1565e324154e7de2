"""Verify a bundle: run every check that can run, and judge them under the level the user asked for."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace

from veriml.receipts import Bundle
from veriml.runtime import OnnxEngine
from veriml.verify import checks
from veriml.verify.checks import BlobLoader
from veriml.verify.policy import required_checks
from veriml.verify.report import Report


def verify_bundle(
    bundle: Bundle,
    *,
    level: str = "signed",
    load_blob: BlobLoader | None = None,
    engine: OnnxEngine | None = None,
    trusted_publishers: Collection[str] = (),
    trusted_nodes: Collection[str] = (),
) -> Report:
    """Check a bundle offline. `level="reexecuted"` also runs the model locally (it needs `load_blob`).

    Trusted keys are verifier-key texts (`name+hash+base64`); when given, a signer outside them fails.
    """
    required = required_checks(level, bool(trusted_publishers), bool(trusted_nodes))
    if "reexec" in required and engine is None:
        engine = OnnxEngine()
    manifest, receipt = bundle.manifest.body, bundle.receipt.body
    blob_check, blob = checks.blob_digest(bundle, load_blob)
    results = [
        checks.manifest_signature(bundle),
        checks.trusted_key(
            "manifest.publisher",
            manifest.publisher.key_id,
            manifest.publisher.vkey,
            trusted_publishers,
            "publisher",
        ),
        checks.receipt_signature(bundle),
        checks.trusted_key("receipt.node", receipt.node.key_id, receipt.node.vkey, trusted_nodes, "node"),
        checks.receipt_binding(bundle),
        checks.inputs_signature(bundle),
        checks.tensors_match("inputs.digest", bundle.inputs, receipt.input_digest),
        checks.tensors_match("outputs.digest", bundle.outputs, receipt.output_digest),
        blob_check,
        checks.reexecution(bundle, engine if "reexec" in required else None, blob),
        checks.not_yet_checkable("log.inclusion", bundle.log_proof is not None, "log inclusion proof"),
        checks.not_yet_checkable("attestations", bool(bundle.attestations), "quorum attestations"),
        checks.not_yet_checkable("zk.proof", bundle.zk_proof is not None, "zero-knowledge proof"),
    ]
    return Report(level, tuple(replace(r, required=r.name in required) for r in results))
