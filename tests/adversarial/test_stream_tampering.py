"""Streaming receipts (issue 15): a node's stream carries a hash chain over its token ids (receipts/stream.py),
and the client checks every chunk as it arrives. A node that alters a chunk's text or token ids, drops or
reorders chunks, or signs other tokens than it streamed is refused at that chunk, with the chunk named, before
the altered text reaches the caller. The official `openai` client reads the same stream unchanged."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from veriml import devnet, examples
from veriml.client import Client
from veriml.errors import VerificationFailed
from veriml.identity import SigningKey
from veriml.receipts import Bundle
from veriml.receipts.stream import stream_chain, stream_next, stream_start

pytest.importorskip("llama_cpp", reason="the llm extra is installed by `make install`")
openai = pytest.importorskip("openai")
MODEL = examples.smollm2_path()
if MODEL is None:
    pytest.skip("SmolLM2 GGUF not found: `make install` fetches it", allow_module_level=True)

HERE = Path(__file__).parent
HONEST, TAMPERING = 0, 1
QUESTION = [{"role": "user", "content": "Name the capital of France."}]


@pytest.fixture(scope="module")
def control(tmp_path_factory):
    return tmp_path_factory.mktemp("stream-control") / "mode"


@pytest.fixture(scope="module")
def net(tmp_path_factory, control):
    root = tmp_path_factory.mktemp("stream")
    commands = {TAMPERING: [sys.executable, str(HERE / "stream_tampering_node.py"), str(control)]}
    network = devnet.up(root, 2, checkpoint_interval=0.3, audit_fraction=0.0, commands=commands)
    with Client(network.urls, admin_token=network.admin_token) as client:
        client.publish(MODEL, "smol/lm", SigningKey.generate("smol"), node=network.urls[HONEST])
        client.pin("smol/lm", network.urls[TAMPERING])
    yield network
    devnet.down(root)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("client-cache")


@pytest.fixture(scope="module")
def honest(net, cache):
    """The honest node's streamed answer and the pieces its caller saw."""
    pieces: list[str] = []
    with Client([net.urls[HONEST]], cache_dir=cache) as client:
        result = client.chat("smol/lm", QUESTION, max_tokens=12, on_text=pieces.append)
    return result, pieces


def test_honest_stream_chain_checks_chunk_by_chunk_and_openai_client_reads_it(net, honest):
    result, pieces = honest
    assert result.text_checked and "Paris" in result.text and "".join(pieces) == result.text
    oai = openai.OpenAI(base_url=net.urls[HONEST] + "/v1", api_key="unused", max_retries=0, timeout=60)
    chunks = list(oai.chat.completions.create(model="smol/lm", messages=QUESTION, max_tokens=12, temperature=0,
                                              stream=True))  # fmt: skip
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == result.text
    bundle = Bundle.from_json(chunks[-1].model_extra["veriml"]["bundle"])
    body = bundle.receipt.body
    chain = stream_start(bundle.salt, bundle.manifest.id, body.request_id)
    assert chunks[0].model_extra["veriml_chunk"] == {"tokens": [], "chain": chain.hex()}
    for chunk in chunks:  # the chain, as any reader of the stream can follow it
        chain = stream_next(chain, chunk.model_extra["veriml_chunk"]["tokens"])
        assert chunk.model_extra["veriml_chunk"]["chain"] == chain.hex()
    assert chain == stream_chain(bundle.salt, bundle.manifest.id, body.request_id, bundle.outputs["tokens"].tolist())


@pytest.mark.parametrize(
    ("mode", "refusal"),
    [
        ("text", r"stream chunk 3: its text differs from what its token ids decode to \(sent '.* Lyon'"),
        ("tokens", "stream chunk 3: its chain value does not follow from the chunks before it and its token ids"),
        ("drop", "stream chunk 3: its chain value does not follow from the chunks before it and its token ids"),
        ("reorder", "stream chunk 3: its chain value does not follow from the chunks before it and its token ids"),
        ("rechain", "the receipt's tokens do not end the stream's chain: it signed other tokens than it streamed"),
    ],
)
def test_tampered_stream_is_refused_at_its_chunk(net, cache, control, honest, mode, refusal):
    control.write_text(mode)
    tamperer = net.urls[TAMPERING]
    pieces: list[str] = []
    # `rechain` is checked on the chain alone (without the tokenizer, whose text check would refuse it at chunk 3):
    # a consistent chain over tokens the node did not sign is refused when the receipt comes.
    check_text = mode != "rechain"
    with Client([tamperer], cache_dir=cache) as client, pytest.raises(VerificationFailed) as refused:
        client.chat("smol/lm", QUESTION, max_tokens=12, on_text=pieces.append, check_text=check_text)
    refused.match(re.escape(f"node {tamperer}: ") + refusal)
    if check_text:
        assert pieces == honest[1][: len(pieces)] and len(pieces) <= 2  # nothing from the tampered chunk on got out
    if mode == "tokens":  # with an honest node beside it, the client moves on
        with Client([tamperer, net.urls[HONEST]], cache_dir=cache) as client:
            result = client.chat("smol/lm", QUESTION, max_tokens=12, on_text=lambda _: None)
        assert result.node == net.urls[HONEST] and result.text == honest[0].text
