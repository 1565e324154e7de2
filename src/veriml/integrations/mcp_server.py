"""`veriml mcp`: a Model Context Protocol server (the official `mcp` SDK) whose tools list and show models, run
ONNX inference, chat with a language model and verify a bundle. Every call goes through the SDK client, which
binds the answer to its request or refuses it; each result carries its bundle and the verdict at the level asked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from veriml.errors import VerimlError
from veriml.integrations.gateway import LEVELS_HELP, Gateway, outputs_json
from veriml.receipts import Bundle

INSTRUCTIONS = (
    "veriml runs models on independent nodes and returns, with every answer, a signed receipt bundle that anyone "
    "can check offline. Every answer here was checked against the request it answers (model version, publisher, "
    "inputs, request id) before it was returned; `verification.verdict` says how far it was checked: "
    "'verified' relative to keys named, 'unanchored' when no key was named to trust."
)

_T = TypeVar("_T")


def _checked(call: Callable[[], _T]) -> _T:
    """Run a gateway call; a veriml error becomes a tool error naming its kind (the caller, often a model, reads
    it), never a traceback."""
    try:
        return call()
    except VerimlError as exc:
        raise ToolError(f"{type(exc).__name__}: {exc}") from exc


def build_server(gateway: Gateway, name: str = "veriml") -> MCPServer:
    """The MCP server over one gateway (its nodes, default level, publisher pins and privacy)."""
    server: MCPServer = MCPServer(name, instructions=INSTRUCTIONS, log_level="WARNING")

    @server.tool(description="List the model names the nodes host, with the nodes that host each.")
    def list_models() -> dict[str, Any]:
        return {"models": _checked(gateway.models)}

    @server.tool(description="Show a model's signed manifest: version, publisher key, input/output signature.")
    def show_model(model: str) -> dict[str, Any]:
        """`model`: owner/name, owner/name@N or a manifest id."""
        return _checked(lambda: gateway.show(model))

    @server.tool(
        description=(
            "Run an ONNX model on inputs (a JSON object: input name -> nested list of numbers, converted to the "
            f"dtype the model declares). `level`: {LEVELS_HELP} (default: the server's). Returns the outputs, the "
            "receipt reference (receipt id and log index), the bundle and its verification verdict."
        )
    )
    def infer(
        model: str, inputs: dict[str, Any], level: str | None = None, privacy: str | None = None
    ) -> dict[str, Any]:
        result = _checked(lambda: gateway.infer(model, inputs, level=level, privacy=privacy))
        return {
            "model": result.bundle.manifest.body.ref,
            "manifest_id": str(result.bundle.manifest.id),
            "outputs": outputs_json(result.outputs),
            "receipt_id": str(result.bundle.receipt.id),
            "log_index": result.log_index,
            "node": result.node,
            "reference": result.reference,
            "bundle": result.bundle.to_json(),
            "verification": result.verification(),
        }

    @server.tool(
        description=(
            "Ask a language model (a GGUF model on the nodes). Give `prompt`, or `messages` in OpenAI's chat "
            f"shape. `level`: {LEVELS_HELP.replace(' or proven', '')}. The text returned is what the signed tokens "
            "decode to; the result carries the bundle and its verification verdict."
        )
    )
    def chat(
        model: str,
        prompt: str | None = None,
        messages: list[dict[str, Any]] | None = None,
        max_tokens: int = 64,
        temperature: float = 0.0,
        seed: int | None = None,
        level: str | None = None,
        privacy: str | None = None,
    ) -> dict[str, Any]:
        if (prompt is None) == (messages is None):
            raise ToolError("InvalidInput: chat: give exactly one of prompt or messages")
        asked: Any = prompt if prompt is not None else messages
        outcome = _checked(lambda: gateway.chat(model, asked, level=level, max_tokens=max_tokens,
                                                temperature=temperature, seed=seed, privacy=privacy))  # fmt: skip
        result = outcome.result
        return {
            "text": result.text,
            "finish_reason": result.finish_reason,
            "model": result.bundle.manifest.body.ref,
            "receipt_id": str(result.bundle.receipt.id),
            "log_index": result.log_index,
            "node": result.node,
            "reference": outcome.reference,
            "bundle": result.bundle.to_json(),
            "verification": outcome.verification(),
        }

    @server.tool(
        description=(
            "Verify a veriml bundle (the JSON object a result carried, or a bundle file's contents) offline at a "
            "level: signed, logged, reexecuted or proven. The verdict is relative to the keys named: with none it "
            "is at best 'unanchored'. Models and proof keys are fetched from the nodes by content address."
        )
    )
    def verify_bundle(
        bundle: dict[str, Any],
        level: str = "signed",
        trusted_publishers: list[str] | None = None,
        trusted_nodes: list[str] | None = None,
        trusted_witnesses: list[str] | None = None,
        witness_quorum: int | None = None,
        agreeing_nodes: int = 1,
    ) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            report = gateway.verify(Bundle.from_json(bundle), level=level,
                                    trusted_publishers=trusted_publishers or (), trusted_nodes=trusted_nodes or (),
                                    trusted_witnesses=trusted_witnesses or (), witness_quorum=witness_quorum,
                                    agreeing_nodes=agreeing_nodes)  # fmt: skip
            return report.to_json()

        return _checked(run)

    return server


def serve(gateway: Gateway, transport: str = "stdio", port: int = 8765) -> None:
    """Serve until stopped: over stdin/stdout, or streamable HTTP on 127.0.0.1:`port` at /mcp."""
    server = build_server(gateway)
    if transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host="127.0.0.1", port=port)
