"""The explorer: every model, node, log entry and result of a node on a web page, and a bundle verifier that runs
in the reader's own browser. Pages read only what the node's public API serves (docs/explorer.md)."""

from veriml.explorer.pages import create_router

__all__ = ["create_router"]
