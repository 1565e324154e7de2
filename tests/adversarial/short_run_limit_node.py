"""An honest node whose model runs stop after 0.5 s (its config's max_run_seconds; the product's default is 60 s),
so a test sees a run stopped in seconds. Not an attacker.
Usage: short_run_limit_node.py --config node.toml
"""

import functools

from veriml.node.__main__ import main
from veriml.node.config import NodeConfig

NodeConfig.load = functools.partial(NodeConfig.load.__func__, NodeConfig, max_run_seconds=0.5)  # type: ignore[attr-defined,method-assign]

if __name__ == "__main__":
    raise SystemExit(main())
