"""Local chains for a devnet and tests, each a process on 127.0.0.1 stopped by its PID: anvil from the npm
package in the project's node_modules, or the embedded chain (eth-tester) behind veriml's JSON-RPC server."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from veriml.chain.build import node_modules
from veriml.chain.connection import ANVIL_KEY, EMBEDDED_KEYS
from veriml.errors import InvalidInput, NotFound, Unavailable

KINDS = ("embedded", "anvil")


@dataclass(frozen=True)
class LocalChain:
    kind: str
    rpc: str
    pid: int
    port: int

    @property
    def faucet_key(self) -> str:
        """A funded account of this local chain; its key is public, fit for nothing but local chains."""
        return ANVIL_KEY if self.kind == "anvil" else EMBEDDED_KEYS[0]

    @property
    def marker(self) -> str:
        """What the process's command line holds, so that a reused PID is never stopped by mistake."""
        return f"--port\0{self.port}"


def anvil_binary() -> Path:
    binary = node_modules() / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
    if not binary.is_file():
        raise NotFound(f"anvil: {binary} not found; run `make install` (npm ci installs @foundry-rs/anvil)")
    return binary


def start(kind: str, port: int, log_path: Path, wait: float = 30.0) -> LocalChain:
    if kind == "anvil":
        command = [str(anvil_binary()), "--host", "127.0.0.1", "--port", str(port)]
    elif kind == "embedded":
        command = [sys.executable, "-m", "veriml.chain.rpc_server", "--port", str(port)]
    else:
        raise InvalidInput(f"chain {kind!r}: expected one of {', '.join(KINDS)}")
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    chain = LocalChain(kind, f"http://127.0.0.1:{port}", process.pid, port)
    deadline = time.monotonic() + wait
    while True:
        try:
            answer = httpx.post(chain.rpc, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []})
            if answer.status_code == 200 and "result" in answer.json():
                return chain
        except (httpx.HTTPError, ValueError):
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            stop(chain)
            raise Unavailable(f"{kind} chain did not answer on {chain.rpc} within {wait:.0f} s (see {log_path})")
        time.sleep(0.1)


def stop(chain: LocalChain) -> None:
    from veriml.devnet import stop_pid

    stop_pid(chain.pid, config=chain.marker)
