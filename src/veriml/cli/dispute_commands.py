"""`veriml chain dispute ...`: dispute a receipt one holds, follow a dispute, and (for a committee member's
operator) reveal a vote its node committed, resolve a dispute, claim payouts. Nodes do all of this by
themselves (veriml.node.disputes); these commands are for people."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from veriml.cli.chain_commands import DeploymentFile, KeyFile, Rpc, _contracts, _ether
from veriml.cli.errors import one_line_errors
from veriml.errors import InvalidInput, NotFound

dispute_app = typer.Typer(
    help="Disputes: a committee of staked nodes re-executes a receipt someone says is wrong.", no_args_is_help=True
)
console = Console()


def _game(rpc: str, deployment: Path):  # type: ignore[no-untyped-def]
    from veriml.chain.disputes import DisputeGame

    return DisputeGame(_contracts(rpc, deployment))


@dispute_app.command("open")
@one_line_errors
def open_(
    bundle: Annotated[Path, typer.Argument(help="a bundle whose answer you say is wrong (its receipt and log proof)")],
    rpc: Rpc,
    deployment: DeploymentFile = Path("chain.json"),
    key_file: KeyFile = None,
    bond: Annotated[str | None, typer.Option("--bond", help="ether posted [default: the minimum bond]")] = None,
) -> None:
    """Dispute the receipt of a bundle: its leaf is proven under the first tree its node anchored that covers
    it; a committee drawn later re-executes the request. A frivolous dispute loses the bond.

    Example: veriml chain dispute open answer.bundle.json --rpc http://127.0.0.1:8545 --key-file me.key
    """
    from veriml.chain import load_account
    from veriml.receipts import Bundle, ReceiptLeaf
    from veriml.tlog import TlogProof

    game = _game(rpc, deployment)
    loaded = Bundle.load(bundle)
    receipt = loaded.receipt.verified()
    if loaded.log_proof is None:
        raise InvalidInput(f"dispute: bundle {bundle} has no log proof (fetch it once a checkpoint covers it)")
    index = TlogProof.parse(loaded.log_proof, "bundle log proof").index
    owner = game.contracts.registry.functions.key_owner(receipt.body.node.public).call()
    if int(owner, 16) == 0:
        raise NotFound(f"dispute: node {receipt.body.node.name} is not registered on chain")
    inclusion = game.leaf_inclusion(owner, ReceiptLeaf.of(receipt).to_bytes(), index)
    wei = None if bond is None else _ether(bond, "--bond")
    dispute_id = game.open(load_account(key_file=key_file), owner, inclusion, wei)
    state = game.state(dispute_id)
    console.print(f"dispute {dispute_id} opened on entry {index} of {owner} (bond {state.bond} wei); its committee"
                  f" is drawn after block {state.draw_block}")  # fmt: skip


@dispute_app.command("status")
@one_line_errors
def status(
    dispute_id: Annotated[int | None, typer.Argument(help="a dispute id [default: every dispute]")] = None,
    rpc: Rpc = "",
    deployment: DeploymentFile = Path("chain.json"),
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Show a dispute (or all): its node, challenger, status, windows, committee and verdict.

    Example: veriml chain dispute status 1 --rpc http://127.0.0.1:8545
    """
    if not rpc:
        raise InvalidInput("dispute status: --rpc (or VERIML_CHAIN_RPC) is required")
    game = _game(rpc, deployment)
    ids = [dispute_id] if dispute_id is not None else list(range(1, game.count() + 1))
    states = [game.state(i) for i in ids]
    if as_json:
        typer.echo(json.dumps([s.to_json() for s in states] if dispute_id is None else states[0].to_json(), indent=2))
        return
    if not states:
        console.print("no disputes")
    for s in states:
        console.print(f"dispute {s.id}: {s.status} — node {s.node}, entry {s.index} (anchored size {s.tree_size}),"
                      f" challenger {s.challenger}, bond {s.bond} wei, committee {', '.join(s.committee) or '-'},"
                      f" commit until block {s.commit_end}, reveal until block {s.reveal_end}")  # fmt: skip


@dispute_app.command("reveal")
@one_line_errors
def reveal(
    dispute_id: Annotated[int, typer.Argument(help="the dispute")],
    rpc: Rpc,
    deployment: DeploymentFile = Path("chain.json"),
    key_file: KeyFile = None,
    votes: Annotated[Path, typer.Option("--votes", help="the node's disputes/votes.json")] = Path(
        "disputes/votes.json"
    ),
) -> None:
    """Reveal the vote a committee member's node committed (from the node's home), e.g. after the node stopped.

    Example: veriml chain dispute reveal 1 --rpc URL --key-file node/eth.key --votes node/disputes/votes.json
    """
    from veriml.chain import load_account
    from veriml.chain.disputes import Vote

    try:
        kept = json.loads(votes.read_text())[str(dispute_id)]
    except FileNotFoundError as exc:
        raise NotFound(f"dispute reveal: {votes}: no such file") from exc
    except (ValueError, KeyError) as exc:
        raise NotFound(f"dispute reveal: {votes} holds no vote for dispute {dispute_id}") from exc
    vote = Vote.from_json(kept["vote"])
    receipt = _game(rpc, deployment).reveal_vote(load_account(key_file=key_file), dispute_id, vote)
    console.print(f"revealed the vote on dispute {dispute_id} (gas {receipt['gasUsed']:,})")


@dispute_app.command("resolve")
@one_line_errors
def resolve(
    dispute_id: Annotated[int, typer.Argument(help="the dispute")],
    rpc: Rpc,
    deployment: DeploymentFile = Path("chain.json"),
    key_file: KeyFile = None,
) -> None:
    """Decide a dispute whose reveal window closed, then claim anything it paid this account."""
    from veriml.chain import load_account

    game = _game(rpc, deployment)
    account = load_account(key_file=key_file)
    game.resolve(account, dispute_id)
    state = game.state(dispute_id)
    console.print(f"dispute {dispute_id}: {state.status}")
    if game.claimable(account.address) > 0:
        game.claim(account)
        console.print("claimed what disputes paid this account")
