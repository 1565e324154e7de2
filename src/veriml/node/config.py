"""Node configuration: a TOML file, then environment variables (VERIML_NODE_<FIELD>) over it.

home = "/var/lib/veriml/node1"
host = "127.0.0.1"
port = 8700
admin_token = "change-me"            # bearer token for publish and pin; reads are public
peers = ["http://127.0.0.1:8701"]
checkpoint_interval = 1.0
max_json_bytes = 67108864
allow_endpoint_networks = ["127.0.0.1/32"]   # a devnet's nodes on chain; production nodes leave it empty

Every limit here bounds what one caller can make the node do; docs/limits.md lists them per endpoint.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from veriml.errors import InvalidInput


@dataclass(frozen=True)
class NodeConfig:
    home: Path
    host: str = "127.0.0.1"
    port: int = 8700
    admin_token: str | None = None
    peers: tuple[str, ...] = field(default_factory=tuple)
    checkpoint_interval: float = 1.0
    max_json_bytes: int = 64 << 20
    max_blob_bytes: int = 4 << 30
    peer_timeout: float = 10.0
    audit_fraction: float = 0.1
    audit_interval: float = 2.0
    audit_retention: float = 7 * 86400.0  # seconds an auditable request's inputs, outputs and salt are kept
    provers: int = 1  # concurrent proof jobs; proving is memory-bound
    # On chain (docs/chain.md): with chain_rpc set, the node registers, anchors and discovers peers there.
    chain_rpc: str | None = None
    chain_id: int | None = None  # refuse a chain with another id
    chain_deployment: str | None = None  # JSON file from `veriml chain deploy`: chain id and contract addresses
    chain_key: str | None = None  # the node's Ethereum key file (hex, mode 0600)
    chain_stake: int = 10**17  # wei staked at registration
    anchor_interval: float = 10.0  # seconds between anchors
    # With a chain whose deployment has a dispute contract: open disputes on audit disagreements, and vote when
    # drawn onto a committee (docs/chain.md, Disputes); checked every dispute_interval seconds.
    disputes: bool = True
    dispute_interval: float = 2.0
    public_url: str | None = None  # the endpoint registered on chain [default: http://host:port]
    llm_max_tokens: int = 1024  # the most tokens one generation may ask for
    llm_n_ctx: int = 2048  # default context size of a generation (capped by the model's)
    llm_n_batch: int = 512  # default n_batch and n_ubatch, and the most a request may ask for
    llm_max_prompt_bytes: int = 1 << 20  # the most prompt text one generation may send to the tokenizer
    # Generations decoded together per model and context shape (continuous batching, docs/llm.md); each holds a
    # KV stream of its n_ctx tokens, so memory grows with this times the context.
    llm_max_sequences: int = 8
    max_input_bytes: int = 64 << 20  # the most tensor bytes one inference may take (nested lists are sized first)
    max_run_seconds: float = 60.0  # a model run past this is stopped (422 run-too-long): its work may depend on values
    # Proof jobs: at most this many queued (more answer 503); at most this many finished ones are kept.
    max_proof_jobs_queued: int = 16
    proof_jobs_kept: int = 10_000
    # Re-executions for other parties (/v1/attest) at once; more answer 503 at once rather than queue.
    max_concurrent_attests: int = 2
    # Model runs in worker threads at once (large models, models kept off the event loop); more wait their turn on the
    # event loop, holding no thread, so slow runs cannot take the threads every other route needs.
    max_threaded_runs: int = 8
    # Asking peers on a caller's behalf (an unknown model name, manifest id or log origin): the peer list is
    # refreshed at most once per this many seconds, and an unknown name is remembered as unknown this long.
    peer_refresh_interval: float = 1.0
    peer_negative_ttl: float = 10.0
    # Endpoints registered on chain are fetched only when they are http(s) URLs whose host resolves to public
    # addresses; networks listed here (CIDR) are allowed besides. Redirects are never followed.
    allow_endpoint_networks: tuple[str, ...] = field(default_factory=tuple)
    # Open publishing (docs/network.md): who may publish with a signature alone ("open", "allow-list" of
    # publisher verifier keys in publish_allow, or "closed": admin token only), and what one publisher key may
    # make this node store: bytes, model names, publishes per hour; publish_total_bytes bounds all keys together.
    publish_policy: str = "open"
    publish_allow: tuple[str, ...] = field(default_factory=tuple)
    publish_quota_bytes: int = 2 << 30
    publish_quota_models: int = 32
    publish_rate_per_hour: int = 60
    publish_total_bytes: int = 64 << 30

    def __post_init__(self) -> None:
        if not 0 <= self.port < 65536:
            raise InvalidInput(f"node config: port {self.port} is not a port number")
        if self.checkpoint_interval <= 0:
            raise InvalidInput("node config: checkpoint_interval must be positive")
        if self.anchor_interval <= 0:
            raise InvalidInput("node config: anchor_interval must be positive")
        if not 0 < self.max_run_seconds < float("inf"):
            raise InvalidInput("node config: max_run_seconds must be a positive number of seconds")
        if self.audit_retention < 0:
            raise InvalidInput("node config: audit_retention must be zero or more seconds")
        if not 0 <= self.audit_fraction <= 1:
            raise InvalidInput("node config: audit_fraction must be between 0 and 1")
        if self.llm_max_tokens < 1 or self.llm_n_ctx < 16 or self.llm_n_batch < 2:
            raise InvalidInput("node config: llm_max_tokens >= 1, llm_n_ctx >= 16 and llm_n_batch >= 2 are required")
        positive = ("llm_max_prompt_bytes", "llm_max_sequences", "max_input_bytes", "max_proof_jobs_queued",
                    "proof_jobs_kept", "max_concurrent_attests", "max_threaded_runs")  # fmt: skip
        for name in positive:
            if getattr(self, name) < 1:
                raise InvalidInput(f"node config: {name} must be at least 1")
        if self.peer_refresh_interval < 0 or self.peer_negative_ttl < 0:
            raise InvalidInput("node config: peer_refresh_interval and peer_negative_ttl must be >= 0")
        for network in self.allow_endpoint_networks:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError as exc:
                raise InvalidInput(f"node config: allow_endpoint_networks: {network!r} is not a network") from exc
        if self.publish_policy not in ("open", "allow-list", "closed"):
            raise InvalidInput(f"node config: publish_policy {self.publish_policy!r}: open, allow-list or closed")
        for name in ("publish_quota_bytes", "publish_quota_models", "publish_rate_per_hour", "publish_total_bytes"):
            if getattr(self, name) < 0:
                raise InvalidInput(f"node config: {name} must be zero or more")
        for peer in self.peers:
            if not peer.startswith(("http://", "https://")):
                raise InvalidInput(f"node config: peer {peer!r} must be an http(s) URL")

    @classmethod
    def load(cls, path: Path | None = None, env: dict[str, str] | None = None, **overrides: Any) -> NodeConfig:
        values: dict[str, Any] = {}
        if path is not None:
            try:
                values.update(tomllib.loads(Path(path).read_text()))
            except FileNotFoundError as exc:
                raise InvalidInput(f"node config {path}: no such file") from exc
            except tomllib.TOMLDecodeError as exc:
                raise InvalidInput(f"node config {path}: not valid TOML ({exc})") from exc
        env = os.environ if env is None else env
        known = {f.name: f for f in fields(cls)}
        for name in known:
            raw = env.get(f"VERIML_NODE_{name.upper()}")
            if raw is not None:
                values[name] = raw.split(",") if name in _LIST_SETTINGS else raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        unknown = set(values) - set(known)
        if unknown:
            raise InvalidInput(f"node config: unknown settings {sorted(unknown)}")
        if "home" not in values:
            raise InvalidInput("node config: `home` (the node's data directory) is required")
        try:
            return cls(
                home=Path(values.pop("home")),
                **{k: _convert(k, v) for k, v in values.items()},
            )
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"node config: {exc}") from exc


_LIST_SETTINGS = ("peers", "allow_endpoint_networks", "publish_allow")
_INT_SETTINGS = frozenset({
    "publish_quota_bytes", "publish_quota_models", "publish_rate_per_hour", "publish_total_bytes",
    "port", "max_json_bytes", "max_blob_bytes", "provers", "chain_id", "chain_stake",
    "llm_max_tokens", "llm_n_ctx", "llm_n_batch", "llm_max_prompt_bytes", "llm_max_sequences", "max_input_bytes",
    "max_proof_jobs_queued", "proof_jobs_kept", "max_concurrent_attests", "max_threaded_runs",
})  # fmt: skip


def _convert(name: str, value: Any) -> Any:
    if name == "peers":
        return tuple(str(p).rstrip("/") for p in value if str(p))
    if name == "publish_allow":
        return tuple(str(k).strip() for k in value if str(k).strip())
    if name == "allow_endpoint_networks":
        return tuple(str(n).strip() for n in value if str(n).strip())
    if name in _INT_SETTINGS:
        return int(value)
    if name in ("checkpoint_interval", "peer_timeout", "audit_fraction", "audit_interval", "anchor_interval",
                "audit_retention", "peer_refresh_interval", "peer_negative_ttl", "dispute_interval",
                "max_run_seconds"):  # fmt: skip
        return float(value)
    return value
