"""Unbounded work through /v1/attest: anyone can sign a receipt, and the node re-executes whatever generation it
names. A receipt asking for a million tokens in a million-token context is refused before any model is loaded, by
the same limits the node's own OpenAI routes apply; re-executions at once are capped (503 beyond)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from veriml import devnet, examples
from veriml.client import Client
from veriml.codec import tensors_digest, tensors_to_json
from veriml.identity import SigningKey
from veriml.receipts import sign_receipt
from veriml.receipts.commitment import commit, new_salt
from veriml.runtime import GenerationParams, RuntimeFingerprint, generation_inputs

pytest.importorskip("llama_cpp", reason="the llm extra is installed by `make install`")
MODEL = examples.smollm2_path()
if MODEL is None:
    pytest.skip("SmolLM2 GGUF not found: `make install` fetches it", allow_module_level=True)

LLAMA = RuntimeFingerprint({"engine": "llama.cpp", "engine_version": "0", "provider": "cpu", "build": "AVX2",
                            "machine": "x86_64", "sampler": "veriml-sampler-v1"})  # fmt: skip


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    root = tmp_path_factory.mktemp("attestnet")
    network = devnet.up(root, 1, checkpoint_interval=0.3, audit_fraction=0.0)
    yield network
    devnet.down(root)


@pytest.fixture(scope="module")
def manifest(net):
    with Client(net.urls, admin_token=net.admin_token) as client:
        return client.publish(MODEL, "smol/lm", SigningKey.generate("smol"), node=net.urls[0])


def attest_body(manifest, params: GenerationParams) -> dict:
    """What an attacker sends: a receipt it signed itself for a generation of its choosing."""
    inputs = generation_inputs([1, 2, 3], params)
    outputs = {"tokens": np.asarray([4, 5], dtype=np.int32)}
    salt = new_salt()
    receipt = sign_receipt(SigningKey.generate("mallory"), manifest=manifest.id, blob=manifest.body.blob,
                           input_commitment=commit(salt, tensors_digest(inputs)),
                           output_commitment=commit(salt, tensors_digest(outputs)), runtime=LLAMA)  # fmt: skip
    return {"receipt": receipt.to_json(), "salt": salt.hex(), "inputs": tensors_to_json(inputs),
            "outputs": tensors_to_json(outputs)}  # fmt: skip


@pytest.mark.parametrize(
    ("params", "refusal"),
    [
        (GenerationParams(max_tokens=1 << 20, n_ctx=1 << 20), "max_tokens: 1048576 is over this node's limit of 1024"),
        (GenerationParams(max_tokens=8, n_ctx=1 << 20), "n_ctx: 1048576 is over this node's limit of 2048"),
        (GenerationParams(max_tokens=8, n_ctx=512, n_batch=1 << 16, n_ubatch=2), "n_batch: 65536 is over"),
    ],
)
def test_attest_with_a_huge_generation_is_refused(net, manifest, params, refusal):
    start = time.monotonic()
    answer = httpx.post(f"{net.urls[0]}/v1/attest", json=attest_body(manifest, params), timeout=30)
    assert answer.status_code == 400, answer.text
    assert answer.json()["type"].endswith("/invalid-input")
    assert refusal in answer.json()["detail"]
    assert time.monotonic() - start < 2  # refused before any model was loaded
    assert httpx.get(f"{net.urls[0]}/v1/health").status_code == 200


def test_attests_at_once_are_capped(net, manifest):
    body = attest_body(manifest, GenerationParams(max_tokens=48, n_ctx=512, temperature=1.0, seed=7))
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: httpx.post(f"{net.urls[0]}/v1/attest", json=body, timeout=120), range(8)))
    statuses = sorted(answer.status_code for answer in answers)
    assert 200 in statuses and 503 in statuses, statuses
    refused = next(answer.json() for answer in answers if answer.status_code == 503)
    assert refused["type"].endswith("/unavailable")
    assert "re-executions for /v1/attest" in refused["detail"] and "at most 2" in refused["detail"]
    verdicts = {answer.json()["body"]["verdict"] for answer in answers if answer.status_code == 200}
    assert verdicts and "agree" not in verdicts  # the attacker's claimed tokens are not what the model generates


@pytest.mark.parametrize(
    ("extra", "refusal"),
    [
        ({"n_ctx": 4096}, "n_ctx: 4096 is over this node's limit of 2048"),
        ({"n_batch": 1 << 16}, "n_batch: 65536 is over this node's limit of 512"),
        ({"max_tokens": 1 << 20}, "max_tokens: 1048576 is over this node's limit of 1024"),
        ({"n": 64}, "n: only 1 choice per request is supported"),
        ({"logprobs": True}, "logprobs: not supported"),
        ({"stop": ["a"] * 100}, "stop: at most 4 sequences"),
        ({"messages": [{"role": "user", "content": "x" * (2 << 20)}]}, "prompt: 2097"),
    ],
)
def test_openai_requests_over_the_node_limits_are_refused(net, manifest, extra, refusal):
    body = {"model": "smol/lm", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4} | extra
    start = time.monotonic()
    answer = httpx.post(f"{net.urls[0]}/v1/chat/completions", json=body, timeout=60)
    assert answer.status_code == 400, answer.text
    assert refusal in answer.json()["error"]["message"]
    assert time.monotonic() - start < 5
