"""`veriml log ...`: this home's transparency log, where every receipt `veriml infer` signs is appended."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from veriml.cli.errors import one_line_errors
from veriml.errors import VerificationFailed
from veriml.service import Home
from veriml.tlog import Log, merkle
from veriml.tlog.checkpoint import b64

log_app = typer.Typer(help="Inspect and prove this home's transparency log.", no_args_is_help=True)
console = Console()


def _open(home: Home) -> Log:
    if not home.log_path.exists():
        raise VerificationFailed(f"no log at {home.log_path}: run `veriml infer` first")
    return Log(home.log_path, home.node_key())


def _home() -> Home:
    from veriml.cli.app import home

    return home()


@log_app.command("show")
@one_line_errors
def show() -> None:
    """Show the log's origin, the verifier key that checks its checkpoints, its size and its latest signed
    checkpoint.

    Example: veriml log show
    """
    home = _home()
    with _open(home) as log:
        latest = log.latest_checkpoint()
        console.print(f"origin:     {log.origin}", markup=False)
        # The C2SP note verifier key that checks the checkpoint below (`veriml verify --node KEY`).
        print(f"verifier key: {home.node_key().public.vkey}")
        console.print(f"entries:    {log.sequenced_size} sequenced, {log.integrated_size} integrated")
        console.print(f"checkpoints signed: {len(log.checkpoints())}")
        if latest is None:
            console.print("no checkpoint yet: `veriml log checkpoint` signs one")
        else:
            console.print("latest checkpoint:")
            print(latest.to_text(), end="")


@log_app.command("checkpoint")
@one_line_errors
def checkpoint() -> None:
    """Integrate new entries and sign a checkpoint if the tree grew; print it (C2SP tlog-checkpoint).

    Example: veriml log checkpoint
    """
    with _open(_home()) as log:
        print(log.sign_checkpoint().to_text(), end="")


@log_app.command("prove")
@one_line_errors
def prove(index: Annotated[int, typer.Argument(help="the entry's index")]) -> None:
    """Print the C2SP tlog-proof of entry INDEX under the latest checkpoint.

    Example: veriml log prove 0 > receipt-0.tlog-proof
    """
    with _open(_home()) as log:
        print(log.prove(index).to_text(), end="")


@log_app.command("verify-consistency")
@one_line_errors
def verify_consistency(
    old: Annotated[int, typer.Argument(help="the older tree size")],
    new: Annotated[int, typer.Argument(help="the newer tree size")],
) -> None:
    """Prove and check that the tree of size OLD is a prefix of the tree of size NEW (RFC 9162 §2.1.4).

    Roots come from the checkpoints signed at those sizes where there are some, so a changed history shows.

    Example: veriml log verify-consistency 10 25
    """
    with _open(_home()) as log:
        log.integrate()
        roots = {c.checkpoint.size: c.checkpoint.root for c in log.checkpoints()}
        old_root = roots.get(old) or log.root(old)
        new_root = roots.get(new) or log.root(new)
        proof = log.consistency_proof(old, new)
        merkle.verify_consistency(old, new, proof, old_root, new_root)
        for line in proof:
            print(b64(line))
        console.print(f"consistent: size {old} ({b64(old_root)}) is a prefix of size {new} ({b64(new_root)})")


@log_app.command("verify")
@one_line_errors
def verify() -> None:
    """Recompute the whole tree from the stored entries and check it against every signed checkpoint.

    Exits 1 naming the first entry or checkpoint that does not match (an entry changed, deleted or reordered).

    Example: veriml log verify
    """
    with _open(_home()) as log:
        count = log.verify_integrity()
        console.print(f"log {log.origin}: {count} entries and {len(log.checkpoints())} checkpoints are consistent")
