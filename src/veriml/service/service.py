"""The operations of veriml, written once: the CLI's local mode, the SDK and the node all call these."""

from __future__ import annotations

import asyncio
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, Future
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from veriml.codec import EncodedTensors, canonical_json, encode_tensors, parse_json, tensors_digest
from veriml.errors import InvalidInput, NotFound, PermissionDenied
from veriml.hub import ComparisonPolicy, Hub, ModelRef, Published, SignedManifest, compare_outputs
from veriml.hub.blobs import Progress
from veriml.identity import Signed, SigningKey
from veriml.receipts import (
    DEFAULT_PRIVACY,
    Bundle,
    ReceiptLeaf,
    SignedAttestation,
    SignedReceipt,
    commit,
    new_salt,
    sign_attestation,
    sign_receipt,
)
from veriml.receipts.commitment import check_privacy
from veriml.runtime import (
    BlobLoader,
    Engine,
    Generation,
    GenerationParams,
    LlamaEngine,
    OnnxEngine,
    RuntimeFingerprint,
    RuntimeSettings,
    coerce_inputs,
    generation_inputs,
    validate_inputs,
)
from veriml.runtime.chat import check_messages, render_chat
from veriml.runtime.generation import OUTPUT
from veriml.service.home import Home
from veriml.service.publish import hash_file, sign_next_version
from veriml.tlog import Log
from veriml.zk import SignedZkDocument, ZkDocument, parse_signed_zk_document, sign_zk_document


def log_extra(
    receipt: SignedReceipt, salt: bytes, inputs: EncodedTensors, outputs: EncodedTensors, privacy: str
) -> bytes:
    """What the log keeps beside a receipt's leaf: the signed receipt and, unless the request is private, the salt
    and the data, so that auditors can re-execute it (a private request's data is not kept). The canonical JSON of
    {"inputs", "outputs", "receipt", "salt"}, put together from its members' canonical bytes."""
    if privacy == "private":
        return b'{"receipt":' + receipt.canonical_json() + b"}"
    return b"".join((b'{"inputs":', inputs.json, b',"outputs":', outputs.json, b',"receipt":',
                     receipt.canonical_json(), b',"salt":"', salt.hex().encode(), b'"}'))  # fmt: skip


class Service:
    """Publish, infer and prove over one home. With `log=True` (the default) every receipt is appended to the
    home's transparency log, durably and under a signed checkpoint, before `infer` returns, and the bundle carries
    its inclusion proof."""

    def __init__(self, home: Home, settings: RuntimeSettings | None = None, log: bool = True) -> None:
        self.home = home
        self.settings = settings or RuntimeSettings()
        self._lazy_lock = threading.RLock()  # concurrent generations finish together: one key, one log writer
        self.hub = Hub(home.hub_dir)
        self.engine = OnnxEngine(self.settings)
        # llama.cpp is imported on first use
        self.llm = LlamaEngine(self.settings.llm_threads or None, max_sequences=self.settings.llm_max_sequences)
        self.logging = log
        self._node_key: SigningKey | None = None
        self._log: Log | None = None

    def close(self) -> None:
        self.llm.close()  # its batchers' threads finish what they run and free their contexts
        if self._log is not None:
            self._log.close()
        self.hub.close()

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def node_key(self) -> SigningKey:
        with self._lazy_lock:
            if self._node_key is None:
                self._node_key = self.home.node_key()
            return self._node_key

    @property
    def log(self) -> Log:
        with self._lazy_lock:
            if self._log is None:
                self._log = Log(self.home.log_path, self.node_key)
            return self._log

    def publish(
        self,
        model_path: Path,
        *,
        name: str,
        publisher: SigningKey | None = None,
        policy: ComparisonPolicy | None = None,
        description: str = "",
        license: str = "",
        progress: Progress | None = None,
        format: str | None = None,
        chain_account: str | None = None,
    ) -> Published:
        """Publish a model file as the next version of `name`; the same bytes again return the version they
        already are."""
        publisher = publisher or self.home.publisher_key()
        model_path = Path(model_path)
        latest = self.hub.registry.latest(name)
        if latest is not None:
            blob, _ = hash_file(model_path)
            existing = self.hub.registry.version_with_blob(name, blob)
            if existing is not None and existing.body.publisher == publisher.public:
                return Published(existing, created=False)
        signed = sign_next_version(
            model_path,
            name=name,
            latest=latest,
            publisher=publisher,
            policy=policy,
            description=description,
            license=license,
            format=format,
            chain_account=chain_account,
        )
        return self.hub.publish(signed, model_path, progress)

    def resolve(self, ref: ModelRef | str) -> SignedManifest:
        return self.hub.resolve(ref)

    def engine_for(self, manifest: SignedManifest) -> Engine:
        """onnxruntime for ONNX models, llama.cpp for GGUF language models."""
        return self.llm if manifest.body.format == "gguf" else self.engine

    def loader(self, manifest: SignedManifest) -> BlobLoader:
        """The model's bytes for onnxruntime; for llama.cpp, which maps the file, its path once re-hashed."""
        blob = manifest.body.blob
        if manifest.body.format != "gguf":
            return lambda: self.hub.blobs.read_verified(blob)

        def checked_path() -> Path:
            self.hub.blobs.check(blob)
            return self.hub.blobs.path(blob)

        return checked_path

    def run(
        self, manifest: SignedManifest, inputs: Mapping[str, Any], time_limit: float | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Check inputs against the manifest and run the model: (inputs as tensors, outputs). RunTooLong if the run
        takes over `time_limit` seconds (default: the settings' max_run_seconds)."""
        body = manifest.body
        arrays = coerce_inputs(body.inputs, inputs, self.settings.max_input_bytes)
        validate_inputs(body.inputs, arrays, self.settings.max_input_bytes, body.policy.allow_nan)
        outputs = self.engine_for(manifest).run(body.blob, self.loader(manifest), arrays, time_limit)
        return arrays, outputs

    def infer(
        self,
        ref: ModelRef | str | SignedManifest,
        inputs: Mapping[str, Any],
        request_id: str | None = None,
        prove: bool = False,
        *,
        salt: bytes | None = None,
        privacy: str = DEFAULT_PRIVACY,
        circuit: bool = False,
    ) -> Bundle:
        """Run a model and return the signed result as a bundle, with its log inclusion proof when logging
        (`prove=True` insists on one). `salt` (32 bytes, fresh when not given) salts the receipt's commitments;
        `privacy` says who may see inputs and outputs besides the client and this node. With `circuit=True` the
        model's ZK circuit computes the result (see `run_circuit`): the result a proof can then be made for."""
        bundle, index = self.infer_logged(ref, inputs, request_id, salt=salt, privacy=privacy, circuit=circuit)
        if prove:
            if index is None:
                raise ValueError("prove=True needs a Service with log=True")
            bundle = self.attach_proof(bundle, index)
        return bundle

    def infer_logged(
        self,
        ref: ModelRef | str | SignedManifest,
        inputs: Mapping[str, Any],
        request_id: str | None = None,
        *,
        salt: bytes | None = None,
        privacy: str = DEFAULT_PRIVACY,
        circuit: bool = False,
    ) -> tuple[Bundle, int | None]:
        """Run a model, sign the receipt and append it to the log: (bundle with its inclusion proof, log index), or
        (bundle, None) when not logging."""
        bundle, logged = self.infer_submit(ref, inputs, request_id, salt=salt, privacy=privacy, circuit=circuit)
        if logged is None:
            return bundle, None
        index = logged.result()[0]
        return self.attach_proof(bundle, index), index

    def infer_submit(
        self,
        ref: ModelRef | str | SignedManifest,
        inputs: Mapping[str, Any],
        request_id: str | None = None,
        *,
        salt: bytes | None = None,
        privacy: str = DEFAULT_PRIVACY,
        circuit: bool = False,
        log_on_loop: bool = False,
        time_limit: float | None = None,
    ) -> tuple[Bundle, Future[list[int]] | asyncio.Future[list[int]] | None]:
        """Like `infer_logged`, but hands back the log append as a future instead of waiting for the disk, so
        an async server can await it without holding a thread. The bundle must not leave before it resolves.
        With `log_on_loop` (called on an event loop's thread) the future is the loop's own and the caller commits
        the log itself (`Log.commit_on_loop`), once a loop turn. `time_limit` bounds the model's run (`run`)."""
        check_privacy(privacy)
        manifest = ref if isinstance(ref, Signed) else self.resolve(ref)
        if circuit:
            arrays, outputs, runtime = self.run_circuit(manifest, inputs)
            return self._sign_and_log(manifest, arrays, outputs, request_id, salt, privacy, runtime, "proven",
                                      log_on_loop)  # fmt: skip
        arrays, outputs = self.run(manifest, inputs, time_limit)
        return self._sign_and_log(manifest, arrays, outputs, request_id, salt, privacy, log_on_loop=log_on_loop)

    def run_circuit(
        self, manifest: SignedManifest, inputs: Mapping[str, Any]
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], RuntimeFingerprint]:
        """Check inputs against the manifest and compute the model's ZK circuit on them (EZKL witness generation:
        deterministic field arithmetic, milliseconds): (inputs, the circuit's fixed-point outputs dequantized
        exactly, the circuit's runtime fingerprint). A `proven` result is this one: a float runtime's outputs
        differ from the circuit's by quantization, so they can never be proven exactly. The runtime names the
        circuit, so a proven receipt is never compared with an onnxruntime one (nor counted as equivocation)."""
        from veriml.zk import ezkl_pipeline

        body = manifest.body
        arrays = coerce_inputs(body.inputs, inputs)
        validate_inputs(body.inputs, arrays, self.settings.max_input_bytes, body.policy.allow_nan)
        document = self.zk_document(manifest)
        paths = self._zk_paths(document, ("compiled", "settings"))
        with tempfile.TemporaryDirectory(prefix="veriml-circuit-") as tmp:
            outputs = ezkl_pipeline.circuit_outputs(
                arrays, [spec.name for spec in body.inputs], body.outputs, paths["compiled"], paths["settings"],
                Path(tmp),
            )  # fmt: skip
        runtime = RuntimeFingerprint({
            "engine": "ezkl",
            "engine_version": document.body.prover.removeprefix("ezkl "),
            "provider": f"circuit {document.body.artifacts['compiled']}",
            "settings": str(document.body.artifacts["settings"]),
            "machine": "any",  # field arithmetic: the same integers on every machine
        })  # fmt: skip
        return arrays, outputs, runtime

    def _zk_paths(self, document: SignedZkDocument, names: Sequence[str]) -> dict[str, Path]:
        paths = {}
        for name in names:
            blob = document.body.artifacts[name]
            paths[name] = self.hub.blobs.path(blob)
            if not paths[name].is_file():
                raise NotFound(f"zk artifact {name} ({blob}) is not in this store")
        return paths

    def _sign_and_log(
        self,
        manifest: SignedManifest,
        arrays: dict[str, np.ndarray],
        outputs: dict[str, np.ndarray],
        request_id: str | None,
        salt: bytes | None,
        privacy: str,
        runtime: RuntimeFingerprint | None = None,
        mode: str = "signed",
        log_on_loop: bool = False,
    ) -> tuple[Bundle, Future[list[int]] | asyncio.Future[list[int]] | None]:
        salt = new_salt() if salt is None else salt
        encoded_inputs, encoded_outputs = encode_tensors(arrays), encode_tensors(outputs)
        receipt = sign_receipt(
            self.node_key,
            manifest=manifest.id,
            blob=manifest.body.blob,
            input_commitment=commit(salt, encoded_inputs.digest),
            output_commitment=commit(salt, encoded_outputs.digest),
            runtime=runtime or self.engine_for(manifest).fingerprint,
            mode=mode,
            privacy=privacy,
            request_id=request_id,
        )
        logged = None
        if self.logging:
            extra = log_extra(receipt, salt, encoded_inputs, encoded_outputs, privacy)
            entry = [(ReceiptLeaf.of(receipt).to_bytes(), extra)]
            logged = self.log.submit_on_loop(entry) if log_on_loop else self.log.submit_batch(entry)
        bundle = Bundle(manifest=manifest, receipt=receipt, salt=salt, inputs=arrays, outputs=outputs,
                        encoded_inputs=encoded_inputs, encoded_outputs=encoded_outputs)  # fmt: skip
        return bundle, logged

    # ---- language models ------------------------------------------------------------------------------

    def _llm_manifest(self, manifest: SignedManifest) -> SignedManifest:
        if manifest.body.format != "gguf" or manifest.body.llm is None:
            raise InvalidInput(f"model {manifest.body.ref}: a {manifest.body.format} model, not a language model")
        return manifest

    def chat_prompt(self, manifest: SignedManifest, messages: object) -> str:
        """The prompt text for chat messages, rendered with the chat template the publisher signed."""
        llm = self._llm_manifest(manifest).body.llm
        assert llm is not None
        return render_chat(llm.chat_template, check_messages(messages))

    def tokenize(self, manifest: SignedManifest, text: str, params: GenerationParams) -> list[int]:
        manifest = self._llm_manifest(manifest)
        if not isinstance(text, str) or not text:
            raise InvalidInput("prompt: empty; give the text to continue")
        return self.llm.tokenize(manifest.body.blob, self.loader(manifest), text, params)

    def detokenize(self, manifest: SignedManifest, tokens: Sequence[int], params: GenerationParams) -> str:
        return self.llm.detokenize(manifest.body.blob, self.loader(manifest), tokens, params)

    def check_generation(self, manifest: SignedManifest, params: GenerationParams) -> None:
        llm = self._llm_manifest(manifest).body.llm
        assert llm is not None
        if params.n_ctx > llm.context_length:
            raise InvalidInput(
                f"n_ctx: {params.n_ctx} is over the context length of {manifest.body.ref}, {llm.context_length}"
            )

    def generate_submit(
        self,
        manifest: SignedManifest,
        prompt_tokens: Sequence[int],
        params: GenerationParams,
        request_id: str | None = None,
        on_text: Callable[[str], None] | None = None,
        *,
        salt: bytes | None = None,
        privacy: str = DEFAULT_PRIVACY,
    ) -> tuple[Bundle, Generation, Future[list[int]] | None]:
        """Generate after the prompt's tokens, sign the receipt (its input commitment covers the prompt and every
        parameter) and append it to the log; the text goes to `on_text` as it is generated."""
        check_privacy(privacy)
        self.check_generation(manifest, params)
        generation = self.llm.generate(manifest.body.blob, self.loader(manifest), prompt_tokens, params, on_text)
        arrays = generation_inputs(prompt_tokens, params)
        outputs = {OUTPUT: np.asarray(generation.tokens, dtype=np.int32)}
        bundle, logged = self._sign_and_log(manifest, arrays, outputs, request_id, salt, privacy)
        return bundle, generation, logged

    def chat(
        self,
        ref: ModelRef | str | SignedManifest,
        messages: object,
        params: GenerationParams | None = None,
        request_id: str | None = None,
        on_text: Callable[[str], None] | None = None,
        *,
        salt: bytes | None = None,
        privacy: str = DEFAULT_PRIVACY,
    ) -> tuple[Generation, Bundle, int | None]:
        """Answer chat messages with a signed, logged generation: (generation, bundle, log index)."""
        manifest = ref if isinstance(ref, Signed) else self.resolve(ref)
        params = params or GenerationParams()
        tokens = self.tokenize(manifest, self.chat_prompt(manifest, messages), params)
        bundle, generation, logged = self.generate_submit(
            manifest, tokens, params, request_id, on_text, salt=salt, privacy=privacy
        )
        return generation, bundle, None if logged is None else logged.result()[0]

    def attest(
        self,
        manifest: SignedManifest,
        receipt: SignedReceipt,
        salt: bytes,
        inputs: Mapping[str, np.ndarray],
        outputs: Mapping[str, np.ndarray],
    ) -> SignedAttestation:
        """Re-execute another node's receipt and sign what was found: agree, disagree, or not comparable. The
        attestation carries only salted commitments, so publishing it reveals nothing about the request."""
        receipt.verified()
        body = receipt.body
        if body.manifest != manifest.id or body.blob != manifest.body.blob:
            raise InvalidInput(f"attest: the receipt is for manifest {body.manifest}, not {manifest.id}")
        if (
            commit(salt, tensors_digest(inputs)) != body.input_commitment
            or commit(salt, tensors_digest(outputs)) != body.output_commitment
        ):
            raise InvalidInput("attest: the salt, inputs or outputs given do not open the receipt's commitments")
        if body.runtime.fields.get("engine") == "ezkl":
            return self._attest_circuit(manifest, receipt, salt, inputs, outputs)
        _, observed = self.run(manifest, inputs)
        mine = self.engine_for(manifest).runtime_class
        if body.runtime.runtime_class != mine and manifest.body.policy.kind == "exact":
            verdict, detail = "not-comparable", f"receipt ran on {body.runtime.runtime_class}, auditor on {mine}"
        else:
            comparison = compare_outputs(manifest.body.policy, dict(outputs), observed)
            verdict = "agree" if comparison.agree else "disagree"
            if body.privacy != "public":
                # The attestation is published (/v1/attestations, /v1/evidence): its detail must not carry values,
                # token ids or error bounds of a request that is not public.
                detail = f"outputs {verdict} under {manifest.body.policy.describe()}"
            elif not comparison.agree and manifest.body.format == "gguf" and OUTPUT in outputs:
                # Say where the generations part and by how much the model preferred its token there.
                detail = self.llm.replay(manifest.body.blob, self.loader(manifest), inputs, outputs[OUTPUT]).detail
            else:
                detail = comparison.detail
        return self._sign_attestation(manifest, receipt, salt, observed, verdict, detail, mine)

    def _sign_attestation(
        self,
        manifest: SignedManifest,
        receipt: SignedReceipt,
        salt: bytes,
        observed: Mapping[str, np.ndarray],
        verdict: str,
        detail: str,
        runtime_class: str,
    ) -> SignedAttestation:
        """Only salted commitments go in: the attestation is published, and must not let anyone confirm a guess."""
        body = receipt.body
        return sign_attestation(
            self.node_key,
            receipt=receipt.id,
            subject=body.node,
            manifest=manifest.id,
            input_commitment=body.input_commitment,
            claimed_output=body.output_commitment,
            observed_output=commit(salt, tensors_digest(observed)),
            verdict=verdict,
            detail=detail,
            runtime_class=runtime_class,
        )

    def _attest_circuit(
        self,
        manifest: SignedManifest,
        receipt: SignedReceipt,
        salt: bytes,
        inputs: Mapping[str, np.ndarray],
        outputs: Mapping[str, np.ndarray],
    ) -> SignedAttestation:
        """A proven receipt's outputs are the circuit's: recompute them with the circuit, exactly, or say the
        receipt is not comparable here (no circuit, or another one)."""
        body = receipt.body
        observed: Mapping[str, np.ndarray] = outputs
        try:
            _, observed, mine_runtime = self.run_circuit(manifest, inputs)
            mine = mine_runtime.runtime_class
        except NotFound as exc:
            verdict, detail, mine = "not-comparable", f"no ZK circuit here: {exc}", "ezkl (no circuit)"
        else:
            if mine_runtime.fields != body.runtime.fields:
                verdict, detail = "not-comparable", f"receipt ran on {body.runtime.runtime_class}, auditor on {mine}"
                observed = outputs
            elif commit(salt, tensors_digest(observed)) == body.output_commitment:
                verdict, detail = "agree", "the circuit's outputs, bit for bit"
            else:
                verdict, detail = "disagree", "the outputs are not the circuit's on these inputs"
        return self._sign_attestation(manifest, receipt, salt, observed, verdict, detail, mine)

    def zk_setup(
        self,
        ref: ModelRef | str,
        publisher: SigningKey | None = None,
        srs: Path | None = None,
        input_visibility: str = "public",
        calibration: str = "resources",
        memory_cap: int | None = None,
    ) -> SignedZkDocument:
        """Set up the circuit for a model version (EZKL), store every artifact as a blob, and sign the ZK
        document with the publisher's key (the owner of the model). Symbolic dims are fixed to 1."""
        from veriml.zk import ezkl_pipeline

        publisher = publisher or self.home.publisher_key()
        manifest = self.resolve(ref)
        if publisher.public != manifest.body.publisher:
            raise PermissionDenied(f"zk setup: only the publisher of {manifest.body.ref} may sign its ZK document")
        bindings = {dim: 1 for spec in manifest.body.inputs for dim in spec.shape or () if isinstance(dim, str)}
        sample = {
            spec.name: np.zeros(
                [bindings.get(d, 1) if not isinstance(d, int) else d for d in spec.shape or (1,)], dtype=spec.dtype
            )
            for spec in manifest.body.inputs
        }
        with tempfile.TemporaryDirectory(prefix="veriml-zk-") as tmp:
            model_path = Path(tmp) / "model.onnx"
            model_path.write_bytes(self.hub.blobs.read_verified(manifest.body.blob))
            names = [spec.name for spec in manifest.body.inputs]  # declared order: EZKL takes inputs by position
            files = ezkl_pipeline.setup(model_path, sample, Path(tmp) / "setup", bindings, input_visibility,
                                        calibration, srs, memory_cap, names)  # fmt: skip
            artifacts = {
                name: self.hub.blobs.put_file(getattr(files, name))
                for name in ("settings", "compiled", "vk", "pk", "srs")
            }
        document = ZkDocument(
            manifest=manifest.id,
            artifacts=artifacts,
            srs_kind="development" if srs is None else "ceremony",
            logrows=files.logrows,
            input_visibility=input_visibility,
            output_visibility="public",
            shape_bindings=bindings,
            prover=ezkl_pipeline.prover_version(),
            publisher=publisher.public,
        )
        signed = sign_zk_document(document, publisher)
        self.hub.registry.put_zk_document(manifest.id, canonical_json(signed.to_json()))
        return signed

    def zk_document(self, manifest: SignedManifest) -> SignedZkDocument:
        return parse_signed_zk_document(parse_json(self.hub.registry.zk_document(manifest.id), "zk document"))

    def add_zk_document(self, signed: SignedZkDocument) -> SignedManifest:
        """Keep a publisher-signed ZK document (uploaded or replicated); its model and artifacts must be here."""
        document = signed.verified()
        manifest = self.hub.registry.by_id(document.body.manifest)
        if document.body.publisher != manifest.body.publisher:
            raise PermissionDenied("zk document: not signed by the model's publisher")
        missing = [name for name, blob in document.body.artifacts.items() if not self.hub.blobs.has(blob)]
        if missing:
            raise InvalidInput(f"zk document: upload its artifacts first (missing: {', '.join(missing)})")
        self.hub.registry.put_zk_document(manifest.id, canonical_json(document.to_json()))
        return manifest

    def prove(self, bundle: Bundle, executor: Executor | None = None) -> Bundle:
        """The bundle with a zero-knowledge proof that its outputs are the model's circuit's on its inputs; the
        proof is checked before it is returned. The bundle must be a circuit result (`infer(..., circuit=True)`,
        or a node's `verify=proven` answer): its outputs must be exactly what the proof will carry. With an
        `executor` the proving runs there (a node uses a process pool)."""
        from veriml.zk import ezkl_pipeline

        document = self.zk_document(bundle.manifest)
        paths = self._zk_paths(document, list(document.body.artifacts))
        names = [spec.name for spec in bundle.manifest.body.inputs]
        inputs = dict(bundle.inputs)
        with tempfile.TemporaryDirectory(prefix="veriml-circuit-") as tmp:
            expected = ezkl_pipeline.circuit_outputs(
                inputs, names, bundle.manifest.body.outputs, paths["compiled"], paths["settings"], Path(tmp)
            )
        if tensors_digest(expected) != tensors_digest(bundle.outputs):
            raise InvalidInput(
                "zk prove: the bundle's outputs are not its model's circuit's (a float runtime's differ by "
                "quantization); prove a circuit result: infer with verify=proven"
            )
        if executor is None:
            proof = ezkl_pipeline.prove_checked(inputs, names, paths)
        else:
            proof = executor.submit(ezkl_pipeline.prove_checked, inputs, names, paths).result()
        return replace(bundle, zk_proof={"document": document.to_json(), "proof": proof})

    def zk_evm_verifier(self, ref: ModelRef | str, out: Path) -> Path:
        """Write EZKL's Solidity verifier for a model version's verification key (for the chain layer)."""
        from veriml.zk import ezkl_pipeline

        document = self.zk_document(self.resolve(ref))
        paths = {name: self.hub.blobs.path(document.body.artifacts[name]) for name in ("settings", "vk", "srs")}
        for name, path in paths.items():
            if not path.is_file():
                raise NotFound(f"zk artifact {name} is not in this store")
        return ezkl_pipeline.evm_verifier(paths["settings"], paths["vk"], paths["srs"], Path(out))

    @staticmethod
    def zk_evm_calldata(bundle: Bundle) -> bytes:
        """The calldata that submits a proven bundle's proof to the Solidity verifier."""
        from veriml.zk import ezkl_pipeline

        if bundle.zk_proof is None:
            raise InvalidInput("the bundle carries no zero-knowledge proof: run `veriml zk prove` first")
        with tempfile.TemporaryDirectory(prefix="veriml-calldata-") as tmp:
            return ezkl_pipeline.evm_calldata(bundle.zk_proof["proof"], Path(tmp))

    def attach_proof(self, bundle: Bundle, index: int) -> Bundle:
        """The bundle with the C2SP tlog-proof of its receipt at `index`, under the newest checkpoint this process
        signed (every appended batch is signed as it is committed, so one covers any index it was handed back).
        The proof is checked against the bundle's own receipt before it is attached."""
        log = self.log
        latest = log.signed_checkpoint
        if latest is None or latest.checkpoint.size <= index:
            latest = log.latest_checkpoint()
        if latest is None or latest.checkpoint.size <= index:
            latest = log.sign_checkpoint()
        return bundle.with_log_proof(log.prove_text(index, latest, ReceiptLeaf.of(bundle.receipt).to_bytes()))
