"""The node: an HTTP server (FastAPI + uvicorn) over the service, its log and witness, and its peers."""

from veriml.node.app import create_app
from veriml.node.config import NodeConfig
from veriml.node.node import Node

__all__ = ["Node", "NodeConfig", "create_app"]
