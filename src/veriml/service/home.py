"""A veriml home directory: keys, the hub (blobs and registry), and what later layers keep beside them.

No global state: every flow takes a Home, so tests and devnets run many homes in one process.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from veriml.errors import NotFound
from veriml.identity import SigningKey

DEFAULT_PUBLISHER_NAME = "veriml-publisher"
NODE_NAME_PREFIX = "veriml.local/node-"


@dataclass(frozen=True, slots=True)
class Home:
    """`Home("/tmp/my-veriml")` or `Home(Path(...))`: a str is taken as a path."""

    root: Path

    def __post_init__(self) -> None:
        if not isinstance(self.root, Path):
            if not isinstance(self.root, str | os.PathLike):
                raise TypeError(f"Home: expected a path (str or Path), got {type(self.root).__name__}")
            object.__setattr__(self, "root", Path(self.root))

    @classmethod
    def default(cls) -> Home:
        return cls(Path(os.environ.get("VERIML_HOME") or Path.home() / ".veriml"))

    @property
    def keys_dir(self) -> Path:
        return self.root / "keys"

    @property
    def publisher_key_path(self) -> Path:
        return self.keys_dir / "publisher.key"

    @property
    def node_key_path(self) -> Path:
        return self.keys_dir / "node.key"

    @property
    def hub_dir(self) -> Path:
        return self.root / "hub"

    @property
    def log_path(self) -> Path:
        return self.root / "log" / "log.sqlite"

    def publisher_key(self) -> SigningKey:
        try:
            return SigningKey.load(self.publisher_key_path)
        except NotFound as exc:
            raise NotFound(f"no publisher key at {self.publisher_key_path}: create one with `veriml keygen`") from exc

    def publisher_key_or_new(self, name: str = DEFAULT_PUBLISHER_NAME) -> SigningKey:
        """This home's publisher key, created (mode 0600) on first use: a script run twice publishes with the same
        key, so the names it owns stay its own."""
        if not self.publisher_key_path.exists():
            SigningKey.generate(name).save(self.publisher_key_path)
        return SigningKey.load(self.publisher_key_path)

    @property
    def ezkl_dir(self) -> Path:
        """EZKL's working cache (EZKL_REPO_PATH): under the home, never in the user's global ~/.ezkl."""
        return self.root / "ezkl"

    def node_key(self) -> SigningKey:
        """The key this home signs receipts and log checkpoints with, created on first use. Its name is the
        log's origin, so it must be unique: it carries a hash of the public key."""
        if not self.node_key_path.exists():
            key = SigningKey.generate("node")
            key = key.renamed(NODE_NAME_PREFIX + hashlib.sha256(key.public.public).hexdigest()[:12])
            key.save(self.node_key_path)
        return SigningKey.load(self.node_key_path)
