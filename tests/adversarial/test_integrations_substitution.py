"""Answer substitution through the integrations (issue 14 on top of issue 10, attack 1): a node that answers with
another model's validly signed bundle, or sends chat text other than what its signed tokens decode to, is refused
through the MCP server, the LangChain chat model and tool, and the OpenGradient drop-in alike, with the client's
VerificationFailed; nothing it said reaches the caller. The attackers are tests/adversarial/substitution_*.py."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import anyio
import numpy as np
import pytest

from tests.integrations.network import llm_available
from veriml import devnet, examples
from veriml.client import Client
from veriml.errors import VerificationFailed
from veriml.identity import SigningKey

pytest.importorskip("mcp", reason="the integrations extra")
pytest.importorskip("langchain_core", reason="the integrations extra")
from mcp import Client as McpClient

from veriml.compat import opengradient as og
from veriml.integrations.gateway import Gateway
from veriml.integrations.langchain import ChatVeriml, VerimlInferenceTool
from veriml.integrations.mcp_server import build_server

HERE = Path(__file__).parent
HONEST, OTHER_MODEL, TEXT_LIAR = 0, 1, 2
X = np.random.default_rng(13).standard_normal((1, 16)).astype(np.float32)
QUESTION = "Name the capital of France."


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    root = tmp_path_factory.mktemp("integrations-substitution")
    commands = {OTHER_MODEL: [sys.executable, str(HERE / "substitution_other_model.py")],
                TEXT_LIAR: [sys.executable, str(HERE / "substitution_chat_text.py")]}  # fmt: skip
    network = devnet.up(root, 3, checkpoint_interval=0.3, audit_fraction=0.0, commands=commands)
    alice = SigningKey.generate("alice")
    with Client(network.urls, admin_token=network.admin_token) as client:
        client.publish(examples.save(examples.mlp(), root / "mlp.onnx"), "alice/mlp", alice, node=network.urls[HONEST])
        client.publish(examples.save(examples.mlp(seed=1), root / "other.onnx"), "alice/other", alice,
                       node=network.urls[OTHER_MODEL])  # fmt: skip
        client.pin("alice/mlp", network.urls[OTHER_MODEL])
        if llm_available():
            client.publish(examples.smollm2_path(), "smol/lm", SigningKey.generate("smol"), node=network.urls[HONEST])
            client.pin("smol/lm", network.urls[TEXT_LIAR])
    yield network
    devnet.down(root)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """The client's vocabulary cache, shared: the model's blob is fetched once."""
    return tmp_path_factory.mktemp("client-cache")


def needs_llm() -> None:
    if not llm_available():
        pytest.skip("the llm extra and SmolLM2 are needed for chat")


def mcp_call(urls: list[str], tool: str, cache: Path | None = None, **arguments):  # type: ignore[no-untyped-def]
    """One tool call through the MCP SDK's client, connected in-process to `veriml mcp`'s server (the stdio and
    HTTP transports are tested in tests/integrations/test_mcp.py)."""

    async def session():  # type: ignore[no-untyped-def]
        with Gateway(urls, cache_dir=cache) as gateway:
            async with McpClient(build_server(gateway)) as client:
                return await client.call_tool(tool, arguments)

    return anyio.run(session)


def test_node_substituting_another_models_answer_is_refused_through_mcp(net):
    refused = mcp_call([net.urls[OTHER_MODEL]], "infer", model="alice/mlp", inputs={"x": X.tolist()})
    assert refused.is_error and refused.structured_content is None
    text = refused.content[0].text
    assert "VerificationFailed: " in text and f"node {net.urls[OTHER_MODEL]} answered for manifest" in text
    assert "alice/other@1" in text


def test_node_substituting_another_models_answer_is_refused_through_langchain_and_opengradient(net):
    tool = VerimlInferenceTool(nodes=[net.urls[OTHER_MODEL]], model="alice/mlp")
    with pytest.raises(VerificationFailed, match=r"answered for manifest .* \(alice/other@1"):
        tool.invoke({"inputs": {"x": X.tolist()}})
    alpha = og.Alpha(nodes=[net.urls[OTHER_MODEL]])
    with pytest.raises(VerificationFailed, match=r"answered for manifest .* \(alice/other@1"):
        alpha.infer("alice/mlp", og.InferenceMode.VANILLA, {"x": X})
    # With an honest node beside it, the answer is the honest node's, for the model asked.
    honest = SigningKey.load(Path(net.nodes[HONEST].home) / "keys" / "node.key").public
    alpha = og.Alpha(nodes=[net.urls[OTHER_MODEL], net.urls[HONEST]])
    for _ in range(2):  # the client's rotating start asks the substituting node first once
        result = alpha.infer("alice/mlp", og.InferenceMode.VANILLA, {"x": X})
        assert result.bundle.manifest.body.ref == "alice/mlp@1" and result.bundle.receipt.body.node == honest


def test_chat_text_other_than_the_signed_tokens_is_refused_through_langchain_streaming(net, cache):
    needs_llm()
    liar = ChatVeriml(nodes=[net.urls[TEXT_LIAR]], model="smol/lm", max_tokens=8, cache_dir=str(cache))
    pieces = []
    # Streamed, the added text is refused at its chunk (its token ids decode to none of it).
    with pytest.raises(VerificationFailed, match="differs from what its token ids decode to"):
        for chunk in liar.stream(QUESTION):
            pieces.append(chunk)
    # Whatever was streamed was provisional, and no chunk carried a receipt for it.
    assert not any("veriml" in chunk.response_metadata for chunk in pieces)
    with pytest.raises(VerificationFailed, match="differs from what its signed tokens decode to"):
        liar.invoke(QUESTION)


def test_chat_text_other_than_the_signed_tokens_is_refused_through_mcp(net, cache):
    needs_llm()
    refused = mcp_call([net.urls[TEXT_LIAR]], "chat", cache, model="smol/lm", prompt=QUESTION, max_tokens=8)
    assert refused.is_error and "differs from what its signed tokens decode to" in refused.content[0].text
    assert "Trust me." not in refused.content[0].text.split("tokens decode to")[-1]


def test_bundle_with_changed_outputs_fails_the_mcp_verify_tool(net):
    with Client([net.urls[HONEST]]) as client:
        bundle = client.infer("alice/mlp", {"x": X})
    forged = replace(bundle, outputs={"y": bundle.outputs["y"] + np.float32(1)})  # the answer a liar would prefer
    pins = [bundle.manifest.body.publisher.vkey]
    honest = mcp_call([net.urls[HONEST]], "verify_bundle", bundle=bundle.to_json(), trusted_publishers=pins)
    report = mcp_call([net.urls[HONEST]], "verify_bundle", bundle=forged.to_json(), trusted_publishers=pins)
    assert honest.structured_content["verdict"] == "verified"
    assert report.structured_content["verdict"] == "failed"
    failed = {check["name"] for check in report.structured_content["checks"] if check["status"] == "fail"}
    assert failed == {"outputs.digest"}


def test_node_serving_other_model_bytes_cannot_steer_the_verify_tools_reexecution(net):
    """A node serving other bytes for the model's content address: the verify tool re-executes only bytes that hash
    to the manifest's blob id, taken from a node that serves them, or says it could not re-execute."""
    with Client([net.urls[HONEST]]) as client:
        bundle = client.infer("alice/mlp", {"x": X})
    blob = bundle.manifest.body.blob
    stored = Path(net.nodes[OTHER_MODEL].home) / "hub" / "blobs" / "sha256" / blob.hex[:2] / blob.hex
    assert stored.is_file()  # the liar holds the model (pinned), and now swaps its bytes
    other = examples.save(examples.mlp(seed=1), Path(net.root) / "swap.onnx").read_bytes()
    stored.write_bytes(other)  # the liar now serves another model under alice/mlp's content address
    lone = mcp_call([net.urls[OTHER_MODEL]], "verify_bundle", bundle=bundle.to_json(), level="reexecuted")
    checks = {c["name"]: c for c in lone.structured_content["checks"]}
    assert lone.structured_content["verdict"] == "incomplete"
    assert checks["blob.digest"]["status"] == "skipped" and "is not at hand" in checks["blob.digest"]["detail"]
    assert checks["reexec"]["status"] == "skipped"
    both = mcp_call([net.urls[OTHER_MODEL], net.urls[HONEST]], "verify_bundle", bundle=bundle.to_json(),
                    level="reexecuted")  # fmt: skip
    assert {c["name"]: c["status"] for c in both.structured_content["checks"]}["reexec"] == "pass"
