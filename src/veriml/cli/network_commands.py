"""`veriml node start`, `veriml devnet up|down|status` and `veriml pin`: running nodes and a local network."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from veriml import devnet as devnets
from veriml.cli.errors import one_line_errors
from veriml.client import Client
from veriml.errors import InvalidInput
from veriml.node.config import NodeConfig

node_app = typer.Typer(help="Run a veriml node.", no_args_is_help=True)
devnet_app = typer.Typer(help="A local network of node processes on 127.0.0.1.", no_args_is_help=True)
console = Console()
DevnetDir = Annotated[Path, typer.Option("--dir", help="where the devnet keeps its nodes and devnet.json")]


@node_app.command("start")
@one_line_errors
def start(
    config: Annotated[Path | None, typer.Option(help="node TOML file (see docs/network.md)")] = None,
    home: Annotated[Path | None, typer.Option(help="data directory (overrides the config)")] = None,
    port: Annotated[int | None, typer.Option(help="port on 127.0.0.1 (overrides the config)")] = None,
    peer: Annotated[list[str] | None, typer.Option("--peer", help="peer node URL (repeatable)")] = None,
) -> None:
    """Run a node in the foreground until Ctrl-C. Settings: the TOML file, then VERIML_NODE_* variables, then
    these options.

    Example: veriml node start --home ./node1 --port 8700 --peer http://127.0.0.1:8701
    """
    from veriml.node.server import serve

    serve(NodeConfig.load(config, home=home, port=port, peers=tuple(peer) if peer else None))


@devnet_app.command("up")
@one_line_errors
def up(
    nodes: Annotated[int, typer.Option("--nodes", help="how many nodes")] = 3,
    directory: DevnetDir = Path("devnet"),
    checkpoint_interval: Annotated[float, typer.Option(help="seconds between checkpoints")] = 1.0,
    chain: Annotated[
        str,
        typer.Option(
            "--chain",
            help="the nodes' chain: embedded (eth-tester in its own process), anvil (npm package), or none (a static"
            " peer list, no chain)",
        ),
    ] = "embedded",
    rpc: Annotated[
        str | None, typer.Option("--rpc", help="put the nodes on this EVM chain, funded from VERIML_CHAIN_KEY")
    ] = None,
    anchor_interval: Annotated[float, typer.Option(help="seconds between anchors, on a chain")] = 2.0,
) -> None:
    """Start N node processes on 127.0.0.1 with random free ports, own keys and data dirs, peered together.

    On a chain (embedded by default, or --chain anvil, or --rpc URL) the contracts are deployed, and the nodes
    register with a stake, anchor their logs and find each other there (docs/chain.md); --chain none gives a
    plain devnet on a static peer list.

    Example: veriml devnet up --nodes 3 --dir ./devnet --chain anvil
    """
    if chain not in ("embedded", "anvil", "none"):
        raise InvalidInput(f"devnet: --chain {chain!r}: expected embedded, anvil or none")
    kind = None if chain == "none" or rpc is not None else chain  # --rpc names the chain itself
    network = devnets.up(directory, nodes, checkpoint_interval, chain=kind, rpc=rpc, anchor_interval=anchor_interval)
    _status_table(network)
    if network.chain:
        console.print(f"chain: {network.chain['kind']} at {network.chain['rpc']}, contracts in "
                      f"{network.chain['deployment']}")  # fmt: skip
    console.print(f"admin token and PIDs in {network.root / devnets.STATE_FILE}; stop with `veriml devnet down`")


@devnet_app.command("down")
@one_line_errors
def down(directory: DevnetDir = Path("devnet")) -> None:
    """Stop the devnet's node processes (by PID) and forget them; their data dirs stay.

    Example: veriml devnet down --dir ./devnet
    """
    network = devnets.down(directory)
    console.print(f"stopped {len(network.nodes)} nodes")
    if network.chain and network.chain.get("pid"):
        console.print(f"stopped the {network.chain['kind']} chain")


@devnet_app.command("status")
@one_line_errors
def status(
    directory: DevnetDir = Path("devnet"),
    as_json: Annotated[bool, typer.Option("--json", help="print the nodes (and chain) as JSON")] = False,
) -> None:
    """Show each devnet node's URL, health, log size and models.

    Example: veriml devnet status --dir ./devnet --json
    """
    network = devnets.Devnet.load(directory)
    if as_json:
        print(json.dumps({"dir": str(network.root), "nodes": _node_states(network), "chain": network.chain}, indent=2))
        return
    _status_table(network)


def _node_states(network: devnets.Devnet) -> list[dict[str, Any]]:
    states = []
    for number, node in enumerate(network.nodes):
        state: dict[str, Any] = {"node": f"node{number}", "url": node.url, "pid": node.pid, "home": node.home,
                                 "up": False, "log_size": None, "models": [], "key": None}  # fmt: skip
        try:
            info = httpx.get(f"{node.url}/v1/info", timeout=2).json()
            state.update(up=True, log_size=info["log_size"], models=list(info["models"]), key=info.get("node"))
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        states.append(state)
    return states


def _status_table(network: devnets.Devnet) -> None:
    table = Table("node", "url", "pid", "health", "log size", "models")
    for column in table.columns[:5]:
        column.no_wrap = True
    table.columns[5].overflow = "fold"
    for state in _node_states(network):
        health = "up" if state["up"] else "[red]down[/]"
        size = "-" if state["log_size"] is None else str(state["log_size"])
        table.add_row(state["node"], state["url"], str(state["pid"]), health, size,
                      Text(", ".join(state["models"]) or "-"))  # fmt: skip
    console.print(table)


@one_line_errors
def pin(
    ref: Annotated[str, typer.Argument(help="owner/name or owner/name@N")],
    node: Annotated[str, typer.Option("--node", help="the node that should hold the model")],
    token: Annotated[str | None, typer.Option(envvar="VERIML_ADMIN_TOKEN", help="the node's admin token")] = None,
    directory: DevnetDir = Path("devnet"),
) -> None:
    """Replicate a model onto a node now: it fetches manifest and blob from its peers and checks the hash.

    Example: veriml pin alice/mnist --node http://127.0.0.1:8701
    """
    if token is None:
        try:
            token = devnets.Devnet.load(directory).admin_token
        except Exception as exc:
            raise InvalidInput("pin needs --token (or a devnet directory holding it)") from exc
    with Client([node], admin_token=token) as client:
        answer = client.pin(ref, node)
    console.print(f"{node} holds {answer['ref']} (blob {answer['blob']})")
