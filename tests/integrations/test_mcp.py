"""`veriml mcp` driven by the official MCP SDK's own client, over stdio (a subprocess) and streamable HTTP, against
a devnet: every tool's result carries its bundle and the verdict at the level asked, and bad input is a tool
error naming what was wrong."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import anyio
import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from tests.integrations.network import LLM, MLP
from veriml import devnet
from veriml.cli.app import app
from veriml.receipts import Bundle, parse_signed_receipt
from veriml.verify import verify_bundle

mcp = pytest.importorskip("mcp", reason="the integrations extra")
from mcp import Client as McpClient  # noqa: E402
from mcp import StdioServerParameters  # noqa: E402

X = np.random.default_rng(3).standard_normal((1, 16)).astype(np.float32)
VERIML = [sys.executable, "-c", "from veriml.cli import main; main()"]


def env() -> dict[str, str]:
    return {key: os.environ[key] for key in ("PYTHONPATH", "VERIML_LLM_MODEL") if key in os.environ}


def stdio(urls: list[str], *extra: str) -> StdioServerParameters:
    args = [*VERIML[1:], "mcp", *(a for url in urls for a in ("--node", url)), *extra]
    return StdioServerParameters(command=VERIML[0], args=args, env=env())


async def call(client: McpClient, tool: str, **arguments):  # type: ignore[no-untyped-def]
    result = await client.call_tool(tool, arguments)
    return result


def run(coroutine_fn):  # type: ignore[no-untyped-def]
    return anyio.run(coroutine_fn)


def test_stdio_tools_list_show_infer_chat_and_verify(veriml_net):
    async def session():  # type: ignore[no-untyped-def]
        async with McpClient(stdio(veriml_net.urls, "--publisher", veriml_net.alice.public.vkey)) as client:
            tools = {tool.name for tool in (await client.list_tools()).tools}
            listed = await call(client, "list_models")
            shown = await call(client, "show_model", model=MLP)
            signed = await call(client, "infer", model=MLP, inputs={"x": X.tolist()})
            quorum = await call(client, "infer", model=MLP, inputs={"x": X.tolist()}, level="quorum:3")
            logged = await call(client, "infer", model=MLP, inputs={"x": X.tolist()}, level="logged")
            assert not logged.is_error, logged.content[0].text
            checked = await call(client, "verify_bundle", bundle=logged.structured_content["bundle"], level="logged",
                                 trusted_publishers=[veriml_net.alice.public.vkey])  # fmt: skip
            rerun = await call(client, "verify_bundle", bundle=logged.structured_content["bundle"],
                               level="reexecuted")  # fmt: skip
            chat = None
            if veriml_net.llm:
                chat = await call(client, "chat", model=LLM, prompt="Name the capital of France.",
                                  max_tokens=10, level="quorum:2")  # fmt: skip
            private = await call(client, "infer", model=MLP, inputs={"x": X.tolist()}, privacy="private")
            bad = await call(client, "infer", model=MLP, inputs={"x": [[1.0, 2.0]]})
            missing = await call(client, "show_model", model="alice/none")
            return tools, listed, shown, signed, quorum, logged, checked, rerun, chat, private, bad, missing

    tools, listed, shown, signed, quorum, logged, checked, rerun, chat, private, bad, missing = run(session)
    assert tools == {"list_models", "show_model", "infer", "chat", "verify_bundle"}
    assert {"name": MLP, "nodes": veriml_net.urls} in listed.structured_content["models"]
    manifest = shown.structured_content
    assert manifest["ref"] == f"{MLP}@1" and manifest["publisher"] == veriml_net.alice.public.vkey
    assert manifest["inputs"][0]["name"] == "x"

    result = signed.structured_content
    bundle = Bundle.from_json(result["bundle"])
    assert not signed.is_error and np.array_equal(bundle.inputs["x"], X)
    assert np.asarray(result["outputs"]["y"]["values"], np.float32).tobytes() == bundle.outputs["y"].tobytes()
    assert result["reference"] == f"{bundle.receipt.id}; log-index={result['log_index']}"
    assert result["verification"]["level"] == "signed"
    assert result["verification"]["verdict"] == "verified"  # relative to the publisher pinned with --publisher
    assert verify_bundle(bundle, level="signed", trusted_publishers=[veriml_net.alice.public.vkey]).verified

    assert quorum.structured_content["verification"]["verdict"] == "verified"
    agreed = Bundle.from_json(quorum.structured_content["bundle"])
    assert len(agreed.attestations) == 2
    # The reference names the log entry of the receipt returned, on the node that signed it.
    entry = httpx.get(f"{quorum.structured_content['node']}/v1/log/entries/{quorum.structured_content['log_index']}")
    assert parse_signed_receipt(entry.json()["receipt"]).id == agreed.receipt.id
    assert logged.structured_content["verification"]["report"]["level"] == "logged"
    assert Bundle.from_json(logged.structured_content["bundle"]).log_proof is not None
    assert checked.structured_content["verdict"] == "verified"
    # Re-executed here, the model fetched from the nodes by content address; relative to the --publisher pin.
    assert rerun.structured_content["verdict"] == "verified"
    assert {c["name"]: c["status"] for c in rerun.structured_content["checks"]}["reexec"] == "pass"

    if chat is not None:  # the text returned is what the signed tokens decode to, with its quorum bundle
        answer = chat.structured_content
        assert "Paris" in answer["text"] and answer["finish_reason"] in ("stop", "length")
        assert answer["verification"]["level"] == "quorum:2" and answer["verification"]["verdict"] == "verified"
        assert answer["verification"]["report"]["level"] == "signed"
        assert len(Bundle.from_json(answer["bundle"]).attestations) == 1

    assert Bundle.from_json(private.structured_content["bundle"]).receipt.body.privacy == "private"
    assert bad.is_error and "InvalidInput" in bad.content[0].text and "'x'" in bad.content[0].text
    assert missing.is_error and "NotFound" in missing.content[0].text


def test_streamable_http_transport(veriml_net, tmp_path):
    port = devnet.free_port()
    log = open(tmp_path / "mcp.log", "wb")  # noqa: SIM115
    args = [*VERIML, "mcp", "--node", veriml_net.urls[0], "--transport", "http", "--port", str(port)]
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ})
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/mcp", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise AssertionError((tmp_path / "mcp.log").read_text()) from None
                time.sleep(0.1)

        async def session():  # type: ignore[no-untyped-def]
            async with McpClient(f"http://127.0.0.1:{port}/mcp") as client:
                return await call(client, "infer", model=MLP, inputs={"x": X.tolist()})

        result = run(session).structured_content
        assert Bundle.from_json(result["bundle"]).manifest.body.ref == f"{MLP}@1"
        assert result["verification"]["verdict"] == "unanchored"
    finally:
        process.terminate()
        process.wait(10)
        log.close()


def test_bad_options_are_one_line_errors(veriml_net):
    runner = CliRunner()
    for options, message in ((["--transport", "sse"], "expected stdio or http"), (["--level", "most"], "verify level"),
                             (["--port", "0"], "expected 1-65535")):  # fmt: skip
        done = runner.invoke(app, ["mcp", "--node", veriml_net.urls[0], *options])
        lines = done.stderr.strip().splitlines()
        assert done.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
        assert "Traceback" not in done.output
