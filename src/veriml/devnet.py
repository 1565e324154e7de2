"""A local network of node processes on 127.0.0.1: each with its own key, data dir and random free port, all
peered with each other. `veriml devnet up` starts one and writes `devnet.json`; `veriml devnet down` stops
the processes it names, by PID."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from veriml.errors import InvalidInput, NotFound, Unavailable

STATE_FILE = "devnet.json"


@dataclass(frozen=True)
class DevnetNode:
    url: str
    pid: int
    home: str
    log: str


@dataclass(frozen=True)
class Devnet:
    root: Path
    admin_token: str
    nodes: tuple[DevnetNode, ...]
    chain: dict[str, Any] | None = None  # kind, rpc, pid, port, deployment file (when the devnet runs on a chain)

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def save(self) -> None:
        body = {"admin_token": self.admin_token, "nodes": [asdict(node) for node in self.nodes], "chain": self.chain}
        path = self.root / STATE_FILE
        path.write_text(json.dumps(body, indent=2))
        os.chmod(path, 0o600)  # it holds the admin token

    @classmethod
    def load(cls, root: Path) -> Devnet:
        path = Path(root) / STATE_FILE
        if not path.is_file():
            raise NotFound(f"no devnet at {root}: start one with `veriml devnet up`")
        body = json.loads(path.read_text())
        nodes = tuple(DevnetNode(**node) for node in body["nodes"])
        return cls(Path(root), body["admin_token"], nodes, body.get("chain"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write_config(
    path: Path,
    home: Path,
    port: int,
    token: str,
    peers: list[str],
    interval: float,
    audit_fraction: float,
    chain_lines: list[str] | None = None,
) -> None:
    lines = [
        *(chain_lines or []),
        # The devnet's nodes find each other on chain at 127.0.0.1: allow that, and only that, private address.
        *(['allow_endpoint_networks = ["127.0.0.1/32"]'] if chain_lines else []),
        f'home = "{home}"',
        'host = "127.0.0.1"',
        f"port = {port}",
        f'admin_token = "{token}"',
        f"peers = [{', '.join(json.dumps(p) for p in peers)}]",
        f"checkpoint_interval = {interval}",
        f"audit_fraction = {audit_fraction}",
        "audit_interval = 0.5",
    ]
    path.write_text("\n".join(lines) + "\n")
    os.chmod(path, 0o600)


def _spawn(command: list[str], config: Path, log_path: Path) -> int:
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            [*command, "--config", str(config)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # outlives the CLI that started it; stopped by `devnet down`
        )
    return process.pid


NODE_COMMAND = [sys.executable, "-m", "veriml.node"]


def up(
    root: Path,
    count: int = 3,
    checkpoint_interval: float = 1.0,
    wait: float = 60.0,
    commands: dict[int, list[str]] | None = None,
    audit_fraction: float = 0.1,
    chain: str | None = None,
    rpc: str | None = None,
    anchor_interval: float = 2.0,
) -> Devnet:
    """Start `count` nodes peered with each other and wait until each answers its health check.

    `commands` replaces the command that runs node N (tests use it to run a node with a fault injected).
    With `chain` ("embedded" or "anvil", a local chain process started here) or `rpc` (any EVM chain, funded
    from VERIML_CHAIN_KEY), the contracts are deployed, each node gets a funded Ethereum key, and the nodes
    register, anchor and find each other on chain instead of through a static peer list."""
    root = Path(root).resolve()
    if (root / STATE_FILE).exists():
        raise InvalidInput(f"a devnet is already recorded at {root}: `veriml devnet down --dir {root}` first")
    if not 1 <= count <= 32:
        raise InvalidInput(f"devnet: --nodes must be 1 to 32, got {count}")
    root.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    ports = [free_port() for _ in range(count)]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    chain_state: dict[str, Any] | None = None
    chain_lines: list[list[str] | None] = [None] * count
    if chain is not None or rpc is not None:
        from veriml.chain.devnet_chain import setup_chain

        chain_state, lines = setup_chain(root, count, chain, rpc, anchor_interval)
        chain_lines = list(lines)
    nodes = []
    for n, (port, url) in enumerate(zip(ports, urls, strict=True)):
        node_dir = root / f"node{n}"
        node_dir.mkdir(exist_ok=True)
        config = node_dir / "node.toml"
        peers = [] if chain_state else [u for u in urls if u != url]  # on chain, peers come from the registry
        _write_config(
            config, node_dir / "home", port, token, peers, checkpoint_interval, audit_fraction, chain_lines[n]
        )
        log_path = node_dir / "node.log"
        pid = _spawn((commands or {}).get(n, NODE_COMMAND), config, log_path)
        nodes.append(DevnetNode(url, pid, str(node_dir / "home"), str(log_path)))
    devnet = Devnet(root, token, tuple(nodes), chain_state)
    devnet.save()
    try:
        wait_healthy(devnet.urls, wait)
    except Unavailable:
        down(root)
        raise
    return devnet


def wait_healthy(urls: list[str], wait: float) -> None:
    deadline = time.monotonic() + wait
    pending = list(urls)
    while pending:
        url = pending[0]
        try:
            if httpx.get(f"{url}/v1/health", timeout=2).status_code == 200:
                pending.pop(0)
                continue
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise Unavailable(f"devnet: node {url} did not become healthy within {wait:.0f} s")
        time.sleep(0.1)


def restart(root: Path, number: int, wait: float = 60.0) -> Devnet:
    """Start node `number` again from its config (after it was stopped or killed) and record its new PID."""
    devnet = Devnet.load(root)
    node = devnet.nodes[number]
    stop_pid(node.pid, config=str(Path(node.home).parent / "node.toml"))
    config = Path(node.home).parent / "node.toml"
    restarted = DevnetNode(node.url, _spawn(NODE_COMMAND, config, Path(node.log)), node.home, node.log)
    nodes = list(devnet.nodes)
    nodes[number] = restarted
    devnet = Devnet(devnet.root, devnet.admin_token, tuple(nodes), devnet.chain)
    devnet.save()
    wait_healthy([node.url], wait)
    return devnet


def _is_our_node(pid: int, config: str | None = None) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    if "\nState:\tZ" in status:  # exited, not yet reaped
        return False
    if config is not None:
        return config.encode() in cmdline  # this node's own config file: not a reused PID
    return b"veriml" in cmdline and b"--config" in cmdline


def stop_pid(pid: int, grace: float = 10.0, config: str | None = None) -> None:
    if not _is_our_node(pid, config):
        return  # already gone, or the PID now belongs to something else: leave it alone
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _is_our_node(pid, config):
            return
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
        time.sleep(0.05)
    if _is_our_node(pid, config):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def down(root: Path) -> Devnet:
    devnet = Devnet.load(root)
    for node in devnet.nodes:
        stop_pid(node.pid, config=str(Path(node.home).parent / "node.toml"))
    if devnet.chain and devnet.chain.get("pid"):
        stop_pid(int(devnet.chain["pid"]), config=f"--port\0{devnet.chain['port']}")
    (Path(root) / STATE_FILE).unlink()
    return devnet
