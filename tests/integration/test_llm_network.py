"""Language models on a 3-node devnet: the official `openai` client against a node (streaming and not, and its
error shape), `Client.chat` with quorum:3, the bundle link, and audit of generations by the peers."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from veriml import devnet, examples
from veriml.client import AsyncClient, ChatResult, Client
from veriml.errors import InvalidInput
from veriml.identity import SigningKey
from veriml.receipts import Bundle
from veriml.verify import verify_bundle

openai = pytest.importorskip("openai")
pytest.importorskip("llama_cpp", reason="the llm extra is installed by `make install`")
MODEL = examples.smollm2_path()
if MODEL is None:
    pytest.skip("SmolLM2 GGUF not found: `make install` fetches it", allow_module_level=True)

QUESTION = [{"role": "user", "content": "Name the capital of France."}]


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    root = tmp_path_factory.mktemp("llmnet")
    network = devnet.up(root, 3, checkpoint_interval=0.3, audit_fraction=1.0)
    yield network
    devnet.down(root)


@pytest.fixture(scope="module")
def published(net):
    publisher = SigningKey.generate("smol")
    with Client(net.urls, admin_token=net.admin_token) as client:
        manifest = client.publish(MODEL, "smol/lm", publisher, license="Apache-2.0", node=net.urls[0])
        for url in net.urls[1:]:
            client.pin("smol/lm", url)
    return manifest, publisher


@pytest.fixture(scope="module")
def oai(net, published):
    client = openai.OpenAI(base_url=net.urls[0] + "/v1", api_key="unused", max_retries=0, timeout=60)
    yield client
    client.close()


def test_openai_client_chat_carries_the_receipt(net, oai):
    raw = oai.chat.completions.with_raw_response.create(model="smol/lm", messages=QUESTION, max_tokens=10,
                                                        temperature=0)  # fmt: skip
    completion = raw.parse()
    assert "Paris" in completion.choices[0].message.content
    assert completion.usage.completion_tokens <= 10
    veriml = completion.model_extra["veriml"]
    assert raw.headers["veriml-receipt"] == f"{veriml['receipt_id']}; log-index={veriml['log_index']}"
    assert 'rel="veriml-bundle"' in raw.headers["link"]
    deadline = time.monotonic() + 30
    while True:  # the bundle gains its log proof with the next checkpoint
        # The bundle route serves the request's data to its client, who proves it with the salt.
        own = {"X-Veriml-Salt": veriml["bundle"]["salt"]}
        bundle = Bundle.from_json(httpx.get(net.urls[0] + veriml["bundle_url"], headers=own, timeout=10).json())
        if bundle.log_proof is not None or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert str(bundle.receipt.id) == veriml["receipt_id"]
    assert bundle.outputs["tokens"].size == completion.usage.completion_tokens
    assert verify_bundle(bundle, level="reexecuted", load_blob=lambda _d: MODEL.read_bytes()).consistent


def test_openai_client_streams_and_the_last_chunk_has_the_receipt(oai):
    stream = oai.chat.completions.create(model="smol/lm", messages=QUESTION, max_tokens=10, temperature=0,
                                         stream=True)  # fmt: skip
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert "Paris" in text
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    assert chunks[-1].model_extra["veriml"]["receipt_id"].startswith("sha256:")
    plain = oai.chat.completions.create(model="smol/lm", messages=QUESTION, max_tokens=10, temperature=0)
    assert plain.choices[0].message.content == text  # greedy: the same tokens either way


def test_openai_client_completions_and_models(oai):
    completion = oai.completions.create(model="smol/lm", prompt="The capital of France is", max_tokens=5,
                                        temperature=0)  # fmt: skip
    assert completion.choices[0].text and completion.model_extra["veriml"]["log_index"] >= 0
    streamed = oai.completions.create(model="smol/lm", prompt="The capital of France is", max_tokens=5,
                                      temperature=0, stream=True)  # fmt: skip
    assert "".join(c.choices[0].text for c in streamed) == completion.choices[0].text
    assert "smol/lm" in [model.id for model in oai.models.list()]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"max_tokens": 5000}, "BadRequestError", "max_tokens: 5000 is over this node's limit of 1024"),
        ({"messages": []}, "BadRequestError", "messages: expected a non-empty list"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "BadRequestError", "'robot' is not supported"),
        ({"messages": [{"role": "user", "content": ""}]}, "BadRequestError", "messages[0].content: empty"),
        ({"messages": [{"role": "user", "content": "hi " * 2500}]}, "BadRequestError", "context length"),
        ({"temperature": 5}, "BadRequestError", "temperature: must be from 0.0 to 2.0"),
        ({"n": 2}, "BadRequestError", "n: only 1 choice"),
        ({"extra_body": {"logit_bias": {"1": 5}}}, "BadRequestError", "logit_bias: this parameter is not supported"),
        ({"extra_body": {"n_batch": 1}}, "BadRequestError", "n_batch: must be from 2"),
        ({"model": "nobody/none"}, "NotFoundError", "model nobody/none"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_bad_requests_get_openai_errors(oai, kwargs, error, message, stream):
    """Refused with its status and OpenAI's error body, streamed or not: a streamed request is prepared (model,
    prompt, parameters) before its status line goes out."""
    request = {"model": "smol/lm", "messages": QUESTION, "max_tokens": 4, "temperature": 0, "stream": stream,
               **kwargs}  # fmt: skip
    with pytest.raises(getattr(openai, error)) as raised:
        oai.chat.completions.create(**request)
    body = raised.value.body
    assert message in body["message"], body
    assert body["type"] in ("invalid_request_error", "not_found_error")


def test_param_names_the_parameter(oai):
    with pytest.raises(openai.BadRequestError) as raised:
        oai.chat.completions.create(model="smol/lm", messages=QUESTION, max_tokens=4, temperature=7)
    assert raised.value.body["param"] == "temperature"


def test_client_chat_with_quorum_of_three(net, published):
    _, publisher = published
    infos = [httpx.get(f"{url}/v1/info", timeout=5).json() for url in net.urls]
    with Client(net.urls) as client:
        pieces: list[str] = []
        result = client.chat("smol/lm", "Name the capital of France.", verify="quorum:3", max_tokens=8,
                             on_text=pieces.append, logged=True)  # fmt: skip
    assert "Paris" in result.text and "".join(pieces) == result.text
    assert len(result.bundle.attestations) == 2
    serving = result.bundle.receipt.body.node.vkey
    report = verify_bundle(
        Bundle.from_bytes(result.bundle.to_bytes()),
        level="reexecuted",
        load_blob=lambda _d: MODEL.read_bytes(),
        trusted_publishers=[publisher.public.vkey],
        trusted_nodes=[info["node"] for info in infos],
        trusted_witnesses=[info["witness"] for info in infos if info["node"] != serving],
        agreeing_nodes=3,
    )
    assert report.consistent, report.failures()


def test_async_client_chat_streams_checks_and_agrees_with_the_sync_client(net, published, tmp_path):
    manifest, _ = published

    async def ask() -> tuple[ChatResult, list[str]]:
        pieces: list[str] = []
        # A fresh cache: the vocabulary is fetched here, asynchronously, by content address.
        async with AsyncClient(net.urls, cache_dir=tmp_path / "cache") as client:
            result = await client.chat("smol/lm", QUESTION, verify="quorum:3", max_tokens=8, on_text=pieces.append)
            with pytest.raises(InvalidInput, match="not available for language models"):
                await client.chat("smol/lm", QUESTION, verify="proven")
        return result, pieces

    result, pieces = asyncio.run(ask())
    with Client(net.urls) as client:
        sync = client.chat("smol/lm", QUESTION, max_tokens=8)
    assert result.text_checked and result.text == sync.text and "".join(pieces) == result.text
    assert result.bundle.manifest.id == manifest.id and len(result.bundle.attestations) == 2
    assert verify_bundle(result.bundle, level="signed").consistent


def test_client_chat_sampling_quorum_shares_one_seed(net, published):
    with Client(net.urls) as client:
        result = client.chat("smol/lm", QUESTION, verify="quorum:3", max_tokens=8, temperature=0.8)
        assert len(result.bundle.attestations) == 2
        with pytest.raises(InvalidInput, match="max_tokens: 5000 is over"):
            client.chat("smol/lm", QUESTION, max_tokens=5000)


def test_peers_audit_generations(net, published, oai):
    oai.chat.completions.create(model="smol/lm", messages=QUESTION, max_tokens=4, temperature=0)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        answers = [httpx.get(f"{url}/v1/attestations", timeout=5).json() for url in net.urls[1:]]
        found = [a for answer in answers for a in answer["attestations"]
                 if a["receipt"]["body"]["manifest"] == str(published[0].id)]  # fmt: skip
        if found:
            assert {a["verdict"] for a in found} == {"agree"}
            return
        time.sleep(0.5)
    pytest.fail("no peer audited a generation within 60 s")
