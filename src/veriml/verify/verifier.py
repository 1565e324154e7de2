"""Verify a bundle: run every check that can run, and judge them under the level the user asked for."""

from __future__ import annotations

from collections.abc import Collection

from veriml.errors import InvalidInput
from veriml.identity import VerifyingKey
from veriml.identity.keys import COSIGNATURE_ED25519
from veriml.receipts import Bundle
from veriml.runtime import Engine, LlamaEngine, OnnxEngine
from veriml.verify import checks
from veriml.verify.checks import BlobLoader
from veriml.verify.policy import required_checks
from veriml.verify.report import CheckResult, Report, TrustRoots


def verify_bundle(
    bundle: Bundle,
    *,
    level: str = "signed",
    load_blob: BlobLoader | None = None,
    engine: Engine | None = None,
    trusted_publishers: Collection[str] = (),
    trusted_nodes: Collection[str] = (),
    trusted_witnesses: Collection[str] = (),
    witness_quorum: int | None = None,
    agreeing_nodes: int = 1,
    require_ceremony_srs: bool = False,
) -> Report:
    """Check a bundle offline. `level="logged"` also needs the log inclusion proof under a trusted checkpoint;
    `level="reexecuted"` also runs the model locally (it needs `load_blob`); a language model's generation is
    replayed token by token.

    Trusted keys are verifier-key texts (`name+hash+base64`); when given, a signer outside them fails.
    Witness keys are cosigner keys (type 0x04); a checkpoint needs `witness_quorum` of them (default: 1 when
    witnesses are given, else 0). `agreeing_nodes=K` requires attestations from K distinct nodes in all.
    """
    required = required_checks(level, bool(trusted_publishers), bool(trusted_nodes))
    if agreeing_nodes > 1:  # a quorum was asked for: K distinct nodes must have agreed
        required = required | {"attestations"}
    witnesses = tuple(
        VerifyingKey.parse(text, "trusted witness key", COSIGNATURE_ED25519) for text in trusted_witnesses
    )
    quorum = (1 if witnesses else 0) if witness_quorum is None else witness_quorum
    if not 0 <= quorum <= len(witnesses):
        raise InvalidInput(f"witness quorum {quorum}: must be between 0 and the {len(witnesses)} witnesses given")
    # One key listed twice, or renamed, is one witness: the log check fails a quorum the distinct keys cannot meet.
    distinct = len({w.public for w in witnesses})
    own_engine = None
    if "reexec" in required and engine is None:
        # One sequence is enough to replay: results do not depend on how many decode together (docs/llm.md).
        engine = own_engine = LlamaEngine(max_sequences=1) if bundle.manifest.body.format == "gguf" else OnnxEngine()
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
        checks.tensors_match("inputs.digest", bundle.inputs, bundle.salt, receipt.input_commitment),
        checks.tensors_match("outputs.digest", bundle.outputs, bundle.salt, receipt.output_commitment),
        checks.log_inclusion(bundle, witnesses, quorum),
        blob_check,
        checks.reexecution(bundle, engine if "reexec" in required else None, blob),
        checks.attestations(bundle, agreeing_nodes, trusted_nodes),
        checks.zk_proof(bundle, load_blob, require_ceremony_srs),
    ]
    if isinstance(own_engine, LlamaEngine):
        own_engine.close()
    trust = TrustRoots(
        publishers=len({VerifyingKey.parse(k, "trusted publisher key").public for k in trusted_publishers}),
        nodes=len({VerifyingKey.parse(k, "trusted node key").public for k in trusted_nodes}),
        witnesses=distinct,
        witness_quorum=quorum,
    )
    # Made directly rather than by dataclasses.replace, which is the slowest part of a client's check of an answer.
    checked = tuple(CheckResult(r.name, r.status, r.detail, r.name in required) for r in results)
    return Report(level, checked, trust)
