"""`veriml.integrations.langchain` with langchain-core against a devnet (no external network): the chat model's
answers carry their bundle and verdict, streamed or not, with quorum:K; the tool runs an ONNX model and hands
back the bundle as its artifact."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from tests.integrations.network import LLM, MLP
from veriml.errors import InvalidInput
from veriml.receipts import Bundle
from veriml.verify import verify_bundle

pytest.importorskip("langchain_core", reason="the integrations extra")
from langchain_core.messages import AIMessageChunk, HumanMessage, SystemMessage, ToolMessage

from veriml.integrations.langchain import ChatVeriml, VerimlInferenceTool

QUESTION = "Name the capital of France."
X = np.random.default_rng(5).standard_normal((1, 16)).astype(np.float32)


@pytest.fixture(scope="module")
def chat_model(veriml_net, client_cache):
    if not veriml_net.llm:
        pytest.skip("the llm extra and SmolLM2 are needed for chat")
    return ChatVeriml(nodes=veriml_net.urls[:2], model=LLM, verify="quorum:2", max_tokens=10,
                      cache_dir=str(client_cache))  # fmt: skip


def test_chat_model_answers_with_receipts_in_response_metadata(chat_model):
    reply = chat_model.invoke([SystemMessage("Answer briefly."), HumanMessage(QUESTION)])
    assert "Paris" in reply.content
    veriml = reply.response_metadata["veriml"]
    bundle = Bundle.from_json(veriml["bundle"])
    assert veriml["reference"] == f"{bundle.receipt.id}; log-index={veriml['log_index']}"
    assert veriml["verification"]["level"] == "quorum:2" and len(bundle.attestations) == 1
    assert veriml["verification"]["verdict"] == "unanchored" and veriml["text_checked"]
    assert verify_bundle(bundle, level="signed", agreeing_nodes=2).consistent
    assert reply.usage_metadata["output_tokens"] == bundle.outputs["tokens"].size


def test_chat_model_streams_then_hands_over_the_checked_receipt(chat_model):
    chunks = list(chat_model.stream(QUESTION, verify="signed"))
    assert all(isinstance(chunk, AIMessageChunk) for chunk in chunks) and len(chunks) > 2
    whole = chunks[0]
    for chunk in chunks[1:]:
        whole = whole + chunk
    assert "Paris" in whole.content
    # The receipt comes once, after every text piece: only then has the client checked the text.
    carrying = [n for n, chunk in enumerate(chunks) if "veriml" in chunk.response_metadata]
    assert len(carrying) == 1 and all(chunk.content == "" for chunk in chunks[carrying[0] :])
    assert chunks[carrying[0]].response_metadata["veriml"]["verification"]["level"] == "signed"
    bundle = Bundle.from_json(whole.response_metadata["veriml"]["bundle"])
    assert bundle.outputs["tokens"].size == whole.usage_metadata["output_tokens"]


def test_chat_model_refuses_messages_it_cannot_send(chat_model):
    with pytest.raises(InvalidInput, match="ToolMessage has no role"):
        chat_model.invoke([ToolMessage("42", tool_call_id="call-1")])


def test_inference_tool_returns_outputs_and_the_bundle_as_artifact(veriml_net):
    tool = VerimlInferenceTool(nodes=veriml_net.urls, model=MLP, verify="quorum:3",
                               publishers=[veriml_net.alice.public.vkey])  # fmt: skip
    message = tool.invoke(
        {"type": "tool_call", "id": "call-1", "name": tool.name, "args": {"inputs": {"x": X.tolist()}}}
    )
    assert isinstance(message, ToolMessage) and message.tool_call_id == "call-1"
    content = json.loads(message.content)
    assert content["verdict"] == "verified" and content["level"] == "quorum:3"
    bundle = Bundle.from_json(message.artifact["bundle"])
    assert np.array_equal(bundle.inputs["x"], X) and len(bundle.attestations) == 2
    assert np.asarray(content["outputs"]["y"]["values"], np.float32).tobytes() == bundle.outputs["y"].tobytes()
    with pytest.raises(InvalidInput, match="this tool runs alice/mlp, not alice/other"):
        tool.invoke({"inputs": {"x": X.tolist()}, "model": "alice/other"})


def test_chat_model_works_from_asyncio(chat_model):
    async def calls():  # type: ignore[no-untyped-def]
        reply = await chat_model.ainvoke(QUESTION)
        chunks = [chunk async for chunk in chat_model.astream(QUESTION)]
        return reply, chunks

    reply, chunks = asyncio.run(calls())
    assert "Paris" in reply.content and "veriml" in reply.response_metadata
    assert "".join(chunk.content for chunk in chunks) == reply.content  # greedy: the same tokens
    assert sum("veriml" in chunk.response_metadata for chunk in chunks) == 1
