"""The llama.cpp engine on SmolLM2-135M-Instruct, in one process: generation, receipts, re-execution token by
token, and what bad input gets. One service (one loaded model) for the whole module; generations are short."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from veriml import examples
from veriml.codec import tensors_digest
from veriml.errors import InvalidInput
from veriml.identity import Signed, SigningKey
from veriml.receipts import Bundle, Receipt, commit
from veriml.runtime import GenerationParams, RuntimeFingerprint
from veriml.service import Home, Service
from veriml.verify import verify_bundle

pytest.importorskip("llama_cpp", reason="the llm extra is installed by `make install`")
MODEL = examples.smollm2_path()
if MODEL is None:
    pytest.skip("SmolLM2 GGUF not found: `make install` fetches it", allow_module_level=True)

QUESTION = [{"role": "user", "content": "Name the capital of France."}]
GREEDY = GenerationParams(max_tokens=12, n_ctx=512)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    home = Home(tmp_path_factory.mktemp("llm") / "home")
    with Service(home) as svc:
        published = svc.publish(MODEL, name="smol/lm", publisher=SigningKey.generate("smol"), license="Apache-2.0")
        assert published.manifest.body.format == "gguf"
        yield svc


@pytest.fixture(scope="module")
def greedy(service):
    generation, bundle, index = service.chat("smol/lm", QUESTION, GREEDY)
    return generation, service.attach_proof(bundle, index)


def load(service):
    return service.hub.blobs.read_verified


def test_manifest_reads_template_and_context_from_the_gguf(service):
    body = service.resolve("smol/lm").body
    assert body.llm is not None and body.llm.context_length == 8192
    assert "<|im_start|>" in body.llm.chat_template and body.opset == 3


def test_greedy_generation_is_signed_logged_and_replays_exactly(service, greedy):
    generation, bundle = greedy
    assert "Paris" in generation.text
    assert bundle.outputs["tokens"].tolist() == generation.tokens
    copy = Bundle.from_bytes(bundle.to_bytes())
    report = verify_bundle(copy, level="reexecuted", load_blob=load(service), engine=service.llm)
    assert report.consistent, report.failures()
    assert "replayed exactly" in report.check("reexec").detail
    again, _, _ = service.chat("smol/lm", QUESTION, GREEDY)
    assert again.tokens == generation.tokens


def test_the_input_digest_covers_the_parameters(service, greedy):
    _, bundle = greedy
    _, other, _ = service.chat("smol/lm", QUESTION, replace(GREEDY, n_batch=256, n_ubatch=256))
    assert tensors_digest(other.inputs) != tensors_digest(bundle.inputs)
    assert other.outputs["tokens"].tolist() == bundle.outputs["tokens"].tolist()  # n_batch changes no token


def test_a_changed_token_is_caught_at_its_step_with_the_logit_margin(service, greedy):
    _, bundle = greedy
    tokens = bundle.outputs["tokens"].copy()
    tokens[3] = (int(tokens[3]) + 1) % 49152
    node = SigningKey.generate("liar")
    forged = _resign(bundle, node, {"tokens": tokens})
    report = verify_bundle(forged, level="reexecuted", load_blob=load(service), engine=service.llm)
    assert not report.consistent
    detail = report.check("reexec").detail
    assert "diverges at step 3" in detail and "top-2 logit margin" in detail


def test_sampling_with_a_seed_replays_exactly(service):
    params = GenerationParams(max_tokens=8, temperature=0.9, top_p=0.95, seed=1234, n_ctx=512)
    first, bundle, _ = service.chat("smol/lm", QUESTION, params)
    second, _, _ = service.chat("smol/lm", QUESTION, params)
    assert first.tokens == second.tokens
    other, _, _ = service.chat("smol/lm", QUESTION, replace(params, seed=4321))
    assert other.tokens != first.tokens
    report = verify_bundle(bundle, level="reexecuted", load_blob=load(service), engine=service.llm)
    assert report.check("reexec").status == "pass", report.check("reexec").detail


def test_another_runtime_class_is_not_comparable(service, greedy):
    _, bundle = greedy
    fields = dict(bundle.receipt.body.runtime.fields, build="AVX+AVX2+AVX512+FMA")
    forged = _resign(bundle, SigningKey.generate("other"), bundle.outputs, RuntimeFingerprint(fields))
    report = verify_bundle(forged, level="reexecuted", load_blob=load(service), engine=service.llm)
    check = report.check("reexec")
    assert check.status == "skipped" and check.detail.startswith("not comparable")
    assert report.verdict == "incomplete"


def test_stop_sequences_end_the_text_and_are_bound(service):
    generation, bundle, index = service.chat("smol/lm", QUESTION, replace(GREEDY, max_tokens=24, stop=("Paris",)))
    assert generation.finish_reason == "stop" and "Paris" not in generation.text
    bundle = service.attach_proof(bundle, index)
    report = verify_bundle(bundle, level="reexecuted", load_blob=load(service), engine=service.llm)
    assert report.consistent, report.failures()


def test_streamed_text_is_the_final_text(service):
    pieces: list[str] = []
    generation, _, _ = service.chat("smol/lm", QUESTION, GREEDY, on_text=pieces.append)
    assert "".join(pieces) == generation.text and len(pieces) > 3


def test_attestation_of_a_generation(service, greedy):
    _, bundle = greedy
    manifest = service.resolve("smol/lm")
    attestation = service.attest(manifest, bundle.receipt, bundle.salt, bundle.inputs, bundle.outputs)
    assert attestation.body.verdict == "agree"
    tokens = bundle.outputs["tokens"].copy()
    tokens[0] = 0
    lie = _resign(bundle, SigningKey.generate("liar"), {"tokens": tokens})
    attestation = service.attest(manifest, lie.receipt, lie.salt, lie.inputs, lie.outputs)
    # The attestation is public: for a request that is not, it names no token.
    assert attestation.body.verdict == "disagree"
    assert attestation.body.detail == "outputs disagree under exact (bitwise)"
    public = _resign(bundle, SigningKey.generate("liar"), {"tokens": tokens}, privacy="public")
    attestation = service.attest(manifest, public.receipt, public.salt, public.inputs, public.outputs)
    assert attestation.body.verdict == "disagree" and "diverges at step 0" in attestation.body.detail


@pytest.mark.parametrize(
    ("messages", "params", "message"),
    [
        ([{"role": "user", "content": "hi " * 600}], GREEDY, "context length: the prompt has"),
        (QUESTION, replace(GREEDY, n_ctx=16384), "n_ctx: 16384 is over the context length of smol/lm@1, 8192"),
        ([{"role": "robot", "content": "hi"}], GREEDY, "messages[0].role: 'robot' is not supported"),
        ([], GREEDY, "messages: expected a non-empty list"),
    ],
)
def test_bad_generation_requests_are_refused_and_log_nothing(service, messages, params, message):
    size = service.log.sequenced_size
    with pytest.raises(InvalidInput) as error:
        service.chat("smol/lm", messages, params)
    assert message in str(error.value)
    assert service.log.sequenced_size == size


def test_an_onnx_model_is_not_a_chat_model(service, mlp_path):
    service.publish(mlp_path, name="alice/mlp", publisher=SigningKey.generate("alice"))
    with pytest.raises(InvalidInput, match="not a language model"):
        service.chat("alice/mlp", QUESTION, GREEDY)


def _resign(bundle: Bundle, key: SigningKey, outputs: dict[str, np.ndarray], runtime=None, privacy=None) -> Bundle:
    old = bundle.receipt.body
    receipt = Receipt(manifest=old.manifest, blob=old.blob, input_commitment=old.input_commitment,
                      output_commitment=commit(bundle.salt, tensors_digest(outputs)), runtime=runtime or old.runtime,
                      mode=old.mode, privacy=privacy or old.privacy, request_id=old.request_id, timestamp=old.timestamp,
                      node=key.public)  # fmt: skip
    return replace(bundle, receipt=Signed.sign(receipt, key), outputs=outputs, log_proof=None)


def test_cli_chat_streams_writes_the_bundle_and_verify_replays_it(tmp_path):
    from typer.testing import CliRunner

    from veriml.cli.app import app

    runner = CliRunner()
    home = tmp_path / "home"
    assert runner.invoke(app, ["--home", str(home), "keygen", "--name", "smol"]).exit_code == 0
    published = runner.invoke(app, ["--home", str(home), "publish", str(MODEL), "--name", "smol/lm"])
    assert published.exit_code == 0, published.output
    out = tmp_path / "answer.bundle.json"
    chat = runner.invoke(app, ["--home", str(home), "chat", "smol/lm", "Name the capital of France.",
                               "--max-tokens", "10", "--out", str(out)])  # fmt: skip
    assert chat.exit_code == 0, chat.output
    assert "Paris" in chat.stdout and "receipt" in chat.stdout and out.is_file()
    publisher = SigningKey.load(Home(home).publisher_key_path).public.vkey
    verified = runner.invoke(app, ["--home", str(home), "verify", str(out), "--reexec", "--publisher", publisher])
    assert verified.exit_code == 0, verified.output
    assert "VERIFIED" in verified.stdout and "regeneration" in verified.stdout
    refused = runner.invoke(app, ["--home", str(home), "chat", "smol/lm", "hi", "--temperature", "3"])
    assert refused.exit_code == 2
    assert refused.stderr.strip() == "error: temperature: must be from 0.0 to 2.0, got 3.0"
