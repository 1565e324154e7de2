"""veriml where agents and apps already are: an MCP server (`veriml mcp`), a LangChain chat model and tool, all
over the SDK client, so every answer is bound to its request and carries its bundle and verdict."""

from veriml.integrations.gateway import ChatOutcome, Gateway, InferResult

__all__ = ["ChatOutcome", "Gateway", "InferResult"]
