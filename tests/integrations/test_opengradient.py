"""`veriml.compat.opengradient` against a devnet: OpenGradient's call shapes (Alpha.infer with its modes, LLM chat
and completion, streaming, the module-level helpers) answered by veriml's client, and TEE refused clearly."""

from __future__ import annotations

import asyncio
from enum import Enum

import numpy as np
import pytest

from tests.integrations.network import LLM, MLP
from veriml.compat import opengradient as og
from veriml.errors import InvalidInput, NotFound
from veriml.receipts import Bundle
from veriml.verify import verify_bundle

X = np.random.default_rng(9).standard_normal((1, 16)).astype(np.float32)
MESSAGES = [{"role": "user", "content": "Name the capital of France."}]


def test_vanilla_infer_returns_output_and_receipt_reference(veriml_net):
    alpha = og.Alpha(private_key="0x" + "11" * 32, nodes=veriml_net.urls)
    result = alpha.infer(model_cid=MLP, inference_mode=og.InferenceMode.VANILLA, model_input={"x": X})
    alpha.close()
    assert isinstance(result, og.InferenceResult)
    assert result.model_output["y"].tobytes() == result.bundle.outputs["y"].tobytes()
    assert result.transaction_hash == f"{result.bundle.receipt.id}; log-index={result.log_index}"
    assert result.log_index is not None and result.verification["level"] == "signed"
    assert verify_bundle(Bundle.from_bytes(result.bundle.to_bytes()), level="signed").consistent


def test_tee_mode_is_refused_naming_what_veriml_offers(veriml_net):
    alpha = og.Alpha(nodes=veriml_net.urls)
    with pytest.raises(InvalidInput, match="no trusted execution environment") as refused:
        alpha.infer(MLP, og.InferenceMode.TEE, {"x": X})
    assert "quorum:K" in str(refused.value) and "ZKML" in str(refused.value)
    with pytest.raises(InvalidInput, match="expected InferenceMode"):
        alpha.infer(MLP, 0, {"x": X})  # type: ignore[arg-type]
    # OpenGradient's own enum (code that still imports it) is read by name, TEE refused the same way.
    theirs = Enum("InferenceMode", {"VANILLA": 0, "ZKML": 1, "TEE": 2})
    with pytest.raises(InvalidInput, match="no trusted execution environment"):
        alpha.infer(MLP, theirs.TEE, {"x": X})
    assert alpha.infer(MLP, theirs.VANILLA, {"x": X}).verification["level"] == "signed"


def test_zkml_mode_asks_for_a_proof(veriml_net):
    # alice/mlp has no circuit on this devnet: the proven level is what was asked, and nothing unproven comes back.
    alpha = og.Alpha(nodes=veriml_net.urls[:1])
    with pytest.raises(NotFound, match="no zero-knowledge circuit"):
        alpha.infer(MLP, og.InferenceMode.ZKML, {"x": X})


def test_llm_chat_completion_and_stream(veriml_net, client_cache):
    if not veriml_net.llm:
        pytest.skip("the llm extra and SmolLM2 are needed for chat")
    llm = og.LLM(nodes=veriml_net.urls[:2], verify="quorum:2", cache_dir=client_cache)
    llm.ensure_opg_approval(min_allowance=5)

    async def calls():  # type: ignore[no-untyped-def]
        chat = await llm.chat(model=LLM, messages=MESSAGES, max_tokens=10)
        completion = await llm.completion(model=LLM, prompt="Name the capital of France.", max_tokens=10,
                                          x402_settlement_mode=og.x402SettlementMode.PRIVATE)  # fmt: skip
        stream = await llm.chat(model=LLM, messages=MESSAGES, max_tokens=10, stream=True)
        chunks = [chunk async for chunk in stream]
        with pytest.raises(InvalidInput, match="no tool calling"):
            await llm.chat(model=LLM, messages=MESSAGES, tools=[{"type": "function"}])
        await llm.close()
        return chat, completion, chunks

    chat, completion, chunks = asyncio.run(calls())
    assert chat.chat_output["role"] == "assistant" and "Paris" in chat.chat_output["content"]
    assert chat.data_settlement_transaction_hash == f"{chat.receipt_id}; log-index={chat.log_index}"
    assert chat.tee_signature is None and chat.verification["level"] == "quorum:2"
    assert len(chat.bundle.attestations) == 1 and chat.usage["completion_tokens"] <= 10
    assert "Paris" in completion.completion_output and completion.bundle.receipt.body.privacy == "private"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert text == chat.chat_output["content"]  # greedy: the same tokens, streamed
    assert chunks[-1].is_final and chunks[-1].bundle is not None and not any(c.is_final for c in chunks[:-1])


def test_module_level_helpers(veriml_net):
    with pytest.raises(InvalidInput, match="init"):
        og._default.clear()
        og.infer(MLP, og.InferenceMode.VANILLA, {"x": X})
    og.init(nodes=veriml_net.urls)
    result = og.infer(MLP, og.InferenceMode.VANILLA, {"x": X.tolist()})
    assert result.model_output["y"].shape == result.bundle.outputs["y"].shape
