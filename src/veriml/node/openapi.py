"""Print the node's OpenAPI document (what docs/openapi.json holds): `python -m veriml.node.openapi`."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from veriml.node.app import create_app
from veriml.node.config import NodeConfig
from veriml.node.node import Node


def document() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        node = Node(NodeConfig(home=Path(tmp) / "node", audit_fraction=0))
        try:
            return create_app(node).openapi()
        finally:
            node.stop()


if __name__ == "__main__":
    print(json.dumps(document(), indent=2, sort_keys=True))
