"""A node that names its log with another node's origin (among static peers nothing stops it) and lies on every
request whose first input value is positive, hoping its auditors take the other node's audit records for its own:
an audited size already past its entries, their sightings, their refusals. The other node is node 1 of the same
devnet (its key is read from beside this node's config). For the audit attack tests only.
Usage: audit_squatting_node.py --config node.toml
"""

import sys
import time
from pathlib import Path

import positive_liar

from veriml.identity import SigningKey
from veriml.node.__main__ import main
from veriml.service import Home

VICTIM = Home(Path(sys.argv[sys.argv.index("--config") + 1]).parent.parent / "node1" / "home")


def squatting_node_key(self: Home) -> SigningKey:
    if not self.node_key_path.exists():
        deadline = time.monotonic() + 60
        while not VICTIM.node_key_path.exists() and time.monotonic() < deadline:
            time.sleep(0.1)  # node 1 makes its key as it starts
        SigningKey.generate(SigningKey.load(VICTIM.node_key_path).name).save(self.node_key_path)
    return SigningKey.load(self.node_key_path)


positive_liar.install()
Home.node_key = squatting_node_key  # type: ignore[method-assign]

if __name__ == "__main__":
    raise SystemExit(main())
