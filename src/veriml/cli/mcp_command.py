"""`veriml mcp`: serve veriml's tools (list and show models, infer, chat, verify a bundle) to MCP clients, such as
Claude Desktop, over stdio or streamable HTTP on 127.0.0.1. Every answer is checked by the SDK client first."""

from __future__ import annotations

from typing import Annotated

import typer

from veriml.cli.errors import one_line_errors
from veriml.cli.options import Privacy, PublisherPins
from veriml.errors import InvalidInput


@one_line_errors
def mcp(
    node: Annotated[list[str], typer.Option("--node", help="node URL (repeatable)")],
    level: Annotated[str, typer.Option(help="default verification level: signed, logged, quorum:K or proven")] = (
        "signed"
    ),
    transport: Annotated[str, typer.Option(help="stdio (for a client that starts this command) or http")] = "stdio",
    port: Annotated[int, typer.Option(help="with --transport http: the port on 127.0.0.1 (path /mcp)")] = 8765,
    publisher: PublisherPins = None,
    privacy: Privacy = "auditable",
) -> None:
    """Serve veriml to MCP clients. Tools: list_models, show_model, infer, chat, verify_bundle; every result
    carries its bundle and the verdict at the level asked.

    Example: veriml mcp --node http://127.0.0.1:8700 --node http://127.0.0.1:8701 --level quorum:2
    """
    if transport not in ("stdio", "http"):
        raise InvalidInput(f"--transport {transport!r}: expected stdio or http")
    if not 0 < port < 65536:
        raise InvalidInput(f"--port {port}: expected 1-65535")
    try:
        from veriml.integrations.gateway import Gateway
        from veriml.integrations.mcp_server import serve
    except ImportError as exc:
        raise InvalidInput(
            f"veriml mcp needs the `integrations` extra (pip install 'veriml[integrations]'): {exc}"
        ) from None
    with Gateway(node, level=level, publishers=publisher, privacy=privacy) as gateway:
        serve(gateway, transport, port)
