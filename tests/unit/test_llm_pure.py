"""Language models without the engine: generation parameters as tensors, the sampler, GGUF headers, manifests,
chat message checks."""

from __future__ import annotations

import struct
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pytest

from veriml.codec import tensors_digest
from veriml.errors import InvalidInput
from veriml.hub import Manifest, describe_gguf
from veriml.identity import SigningKey
from veriml.runtime.chat import check_messages
from veriml.runtime.generation import (
    GenerationParams,
    choose_token,
    generation_inputs,
    split_inputs,
    top2_margin,
    uniform,
)
from veriml.service import Home, Service
from veriml.service.publish import sign_manifest

TEMPLATE = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}<|assistant|>"


def _string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


def write_gguf(path: Path, metadata: dict[str, object] | None = None, magic: bytes = b"GGUF") -> Path:
    """A GGUF file with metadata and no tensors: enough for the header reader."""
    metadata = metadata if metadata is not None else {
        "general.architecture": "llama",
        "general.name": "tiny",
        "llama.context_length": 256,
        "tokenizer.chat_template": TEMPLATE,
    }  # fmt: skip
    body = b""
    for key, value in metadata.items():
        body += _string(key)
        if isinstance(value, str):
            body += struct.pack("<I", 8) + _string(value)
        else:
            body += struct.pack("<I", 4) + struct.pack("<I", value)
    path.write_bytes(magic + struct.pack("<IQQ", 3, 0, len(metadata)) + body)
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"temperature": 2.5}, "temperature: must be from 0.0 to 2.0, got 2.5"),
        ({"max_tokens": 0}, "max_tokens: must be from 1"),
        ({"top_p": 0.0}, "top_p: must be in (0, 1], got 0.0"),
        ({"seed": -1}, "seed: must be from 0 to 4294967295, got -1"),
        ({"n_batch": 1, "n_ubatch": 1}, "n_batch: must be from 2"),
        ({"n_ubatch": 1024}, "n_ubatch: must be from 2 to 512, got 1024"),
        ({"stop": ("a", "b", "c", "d", "e")}, "stop: at most 4 sequences, got 5"),
        ({"stop": ("",)}, "stop: each sequence must be 1 to 256 characters"),
        ({"max_tokens": 1.5}, "max_tokens: expected an integer, got 1.5"),
        ({"temperature": float("nan")}, "temperature: expected a finite number"),
        ({"repeat_penalty": 0.0}, "repeat_penalty: must be in (0, 10]"),
    ],
)
def test_out_of_range_parameters_are_refused_by_name(change, message):
    with pytest.raises(InvalidInput) as error:
        GenerationParams(**change)
    assert str(error.value).startswith(message)


def test_parameters_travel_as_tensors_and_every_one_changes_the_input_digest():
    params = GenerationParams(max_tokens=9, stop=("\n\n", "é"), temperature=0.7, top_k=40, top_p=0.9, min_p=0.05,
                              repeat_penalty=1.1, seed=7, n_ctx=512, n_batch=64, n_ubatch=32)  # fmt: skip
    inputs = generation_inputs([1, 2, 3], params)
    prompt, back = split_inputs(inputs)
    assert prompt == [1, 2, 3] and back == params
    base = tensors_digest(inputs)
    changed = {"max_tokens": 10, "stop": ("\n",), "temperature": 0.8, "top_k": 41, "top_p": 0.95, "min_p": 0.0,
               "repeat_penalty": 1.0, "seed": 8, "n_ctx": 1024, "n_batch": 128, "n_ubatch": 64}  # fmt: skip
    assert set(changed) == {f.name for f in fields(GenerationParams)}
    for name, value in changed.items():
        assert tensors_digest(generation_inputs([1, 2, 3], replace(params, **{name: value}))) != base, name
    assert tensors_digest(generation_inputs([1, 2, 4], params)) != base


def test_greedy_is_argmax_with_ties_to_the_lowest_id():
    logits = np.array([0.1, 3.0, -1.0, 3.0], dtype=np.float32)
    assert choose_token(logits, [], GenerationParams(), 0) == 1
    assert top2_margin(logits, [], GenerationParams()) == (1, 3, 0.0)


def test_repeat_penalty_follows_llama_cpp():
    logits = np.array([2.0, 1.9, -1.0], dtype=np.float32)
    params = GenerationParams(repeat_penalty=1.2)
    assert choose_token(logits, [0], params, 0) == 1  # 2.0 / 1.2 < 1.9
    assert top2_margin(np.array([-1.0, -1.1], np.float32), [0], params)[0] == 1  # negative: multiplied


def test_sampling_is_a_function_of_the_seed_and_step():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal(1000).astype(np.float32)
    params = GenerationParams(temperature=1.0, seed=42)
    first = [choose_token(logits, [], params, step) for step in range(50)]
    assert first == [choose_token(logits, [], params, step) for step in range(50)]
    other = [choose_token(logits, [], replace(params, seed=43), step) for step in range(50)]
    assert first != other
    assert len(set(first)) > 10  # it samples, not argmax
    assert 0.0 <= uniform(42, 0) < 1.0 and uniform(42, 0) != uniform(42, 1)


def test_top_k_one_and_tiny_top_p_are_greedy():
    logits = np.random.default_rng(1).standard_normal(500).astype(np.float32)
    best = int(np.argmax(logits))
    for params in (
        GenerationParams(temperature=1.5, top_k=1, seed=3),
        GenerationParams(temperature=1.5, top_p=1e-9, seed=3),
    ):
        assert {choose_token(logits, [], params, step) for step in range(20)} == {best}


def test_min_p_drops_unlikely_tokens():
    logits = np.array([5.0, 4.9, -20.0, -20.0], dtype=np.float32)
    params = GenerationParams(temperature=1.0, min_p=0.1, seed=1)
    assert {choose_token(logits, [], params, step) for step in range(200)} == {0, 1}


def test_gguf_header_is_read(tmp_path):
    description = describe_gguf(write_gguf(tmp_path / "tiny.gguf"))
    assert (description.architecture, description.context_length, description.chat_template) == (
        "llama", 256, TEMPLATE,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x08\x01\x12\x04onnx", "not a GGUF file (starts with"),
        (b"GGUF\x03\x00\x00\x00\x00", "not a GGUF file (truncated header)"),
        (b"GGUF\x09\x00\x00\x00" + b"\x00" * 16, "GGUF version 9 is not supported"),
    ],
)
def test_files_that_are_not_gguf_are_refused(tmp_path, content, message):
    path = tmp_path / "model.gguf"
    path.write_bytes(content)
    with pytest.raises(InvalidInput, match=r"not|version") as error:
        describe_gguf(path)
    assert message in str(error.value)


def test_gguf_without_context_length_is_refused(tmp_path):
    path = write_gguf(tmp_path / "x.gguf", {"general.architecture": "llama"})
    with pytest.raises(InvalidInput, match=r"no llama\.context_length"):
        describe_gguf(path)


def test_gguf_manifest_carries_template_and_context_and_round_trips(tmp_path):
    signed = sign_manifest(write_gguf(tmp_path / "tiny.gguf"), name="alice/tiny", version=1, parent=None,
                           publisher=SigningKey.generate("alice"))  # fmt: skip
    body = signed.body
    assert body.format == "gguf" and body.llm is not None
    assert (body.llm.context_length, body.llm.chat_template) == (256, TEMPLATE)
    assert [spec.name for spec in body.outputs] == ["tokens"]
    assert Manifest.from_json(body.to_json()) == body


def test_onnx_manifest_has_no_llm_field(mlp_path):
    signed = sign_manifest(mlp_path, name="alice/mlp", version=1, parent=None, publisher=SigningKey.generate("a"))
    assert "llm" not in signed.body.to_json()
    with pytest.raises(InvalidInput, match="only a gguf one"):
        replace(signed.body, format="gguf")


def test_non_gguf_published_as_gguf_is_refused_and_nothing_is_stored(tmp_path, mlp_path):
    home = Home(tmp_path / "home")
    with Service(home) as service:
        with pytest.raises(InvalidInput, match="not a GGUF file"):
            service.publish(mlp_path, name="alice/lm", publisher=SigningKey.generate("alice"), format="gguf")
        assert service.hub.registry.names() == []
        assert not any(p.is_file() for p in (home.hub_dir / "blobs").rglob("*"))


@pytest.mark.parametrize(
    ("messages", "message"),
    [
        ([], "messages: expected a non-empty list"),
        ([{"role": "tool", "content": "x"}], "messages[0].role: 'tool' is not supported"),
        ([{"role": "user", "content": "  "}], "messages[0].content: empty"),
        ([{"role": "user", "content": [{"type": "image_url"}]}], "part of type 'image_url' is not supported"),
        ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}], "the last message is"),
        ([{"role": "user"}], "messages[0].content: expected text, got NoneType"),
    ],
)
def test_bad_messages_get_specific_errors(messages, message):
    with pytest.raises(InvalidInput) as error:
        check_messages(messages)
    assert message in str(error.value)


def test_text_parts_are_joined():
    parts = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    assert check_messages([{"role": "user", "content": parts}]) == [{"role": "user", "content": "ab"}]


def test_gguf_whose_digest_differs_from_the_manifest_is_refused_and_nothing_is_stored(tmp_path):
    from veriml.errors import VerificationFailed
    from veriml.hub import Hub

    signed = sign_manifest(write_gguf(tmp_path / "a.gguf"), name="alice/tiny", version=1, parent=None,
                           publisher=SigningKey.generate("alice"))  # fmt: skip
    other = write_gguf(tmp_path / "b.gguf", {"general.architecture": "llama", "llama.context_length": 512})
    hub = Hub(tmp_path / "hub")
    try:
        with pytest.raises(VerificationFailed, match="bytes hash to"):
            hub.publish(signed, other)
        assert hub.registry.names() == [] and not hub.blobs.has(signed.body.blob)
    finally:
        hub.close()


def test_receipts_from_another_runtime_class_are_not_comparable_in_a_quorum(bundle):
    from veriml.client.protocol import attestation, judge_quorum
    from veriml.errors import VerificationFailed
    from veriml.identity import Signed
    from veriml.receipts import Receipt
    from veriml.runtime import RuntimeFingerprint
    from veriml.verify import verify_bundle

    other_key = SigningKey.generate("other")
    old = bundle.receipt.body
    fields = dict(old.runtime.fields, engine_version="0.0.0-other")
    receipt = Signed.sign(replace(old, runtime=RuntimeFingerprint(fields), node=other_key.public), other_key)
    other = replace(bundle, receipt=receipt, log_proof=None)
    assert isinstance(receipt.body, Receipt)
    with pytest.raises(VerificationFailed, match="not comparable: the nodes ran different runtime classes"):
        judge_quorum([("a", bundle), ("b", other)])
    combined = replace(bundle, attestations=(attestation(other),))
    check = verify_bundle(combined, agreeing_nodes=2).check("attestations")
    assert check.status == "fail" and "is not comparable: it ran on" in check.detail


# ---- the stream's hash chain (receipts/stream.py) -----------------------------------------------------------


def test_stream_chain_is_per_token_and_bound_to_the_request():
    import hashlib

    from veriml.codec import Digest
    from veriml.receipts.stream import stream_chain, stream_next, stream_start

    salt, manifest = bytes(range(32)), Digest("sha256", hashlib.sha256(b"m").digest())
    start = stream_start(salt, manifest, "req-1")
    # The spec, spelled out: SHA-256 of the domain, salt, manifest digest and request id; then one hash per token.
    assert start == hashlib.sha256(b"veriml/stream/v1\x00" + salt + manifest.value + b"req-1").digest()
    assert stream_next(start, [7]) == hashlib.sha256(start + (7).to_bytes(4, "little")).digest()
    tokens = [5, 900, 2, 49151]
    # How a node groups tokens into chunks does not change the final value the receipt's tokens give.
    assert stream_next(stream_next(start, tokens[:1]), tokens[1:]) == stream_chain(salt, manifest, "req-1", tokens)
    assert stream_next(start, []) == start
    # Another salt, manifest, request id, order or token gives another chain.
    others = [
        stream_chain(bytes(32), manifest, "req-1", tokens),
        stream_chain(salt, Digest("sha256", bytes(32)), "req-1", tokens),
        stream_chain(salt, manifest, "req-2", tokens),
        stream_chain(salt, manifest, "req-1", tokens[::-1]),
        stream_chain(salt, manifest, "req-1", tokens[:-1]),
    ]
    assert len({stream_chain(salt, manifest, "req-1", tokens), *others}) == 6
    with pytest.raises(ValueError, match="salt: expected 32 bytes"):
        stream_start(b"short", manifest, "req-1")
