"""`python -m veriml.node --config node.toml`: run one node (what `veriml node start` and the devnet call)."""

from __future__ import annotations

import argparse
from pathlib import Path

from veriml.errors import VerimlError
from veriml.node.config import NodeConfig
from veriml.node.server import serve


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m veriml.node")
    parser.add_argument("--config", type=Path, help="node TOML file")
    args = parser.parse_args()
    try:
        config = NodeConfig.load(args.config)
    except VerimlError as exc:
        print(f"error: {exc}")
        return 2
    serve(config)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
