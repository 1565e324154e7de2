"""Rich renderings of manifests, outputs and verification reports for the terminal."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from veriml.codec import tensor_digest
from veriml.codec.tensor import describe_array
from veriml.hub import SignedManifest
from veriml.receipts import Bundle
from veriml.tlog import TlogProof
from veriml.verify import Report

_STATUS_STYLE = {"pass": "[green]pass[/]", "fail": "[bold red]FAIL[/]", "skipped": "[yellow]skipped[/]"}
_VERDICT_STYLE = {
    "verified": "[bold green]VERIFIED[/]",
    "unanchored": "[bold yellow]NOT ANCHORED[/] (every check passed, but against no key you trust)",
    "failed": "[bold red]FAILED[/]",
    "incomplete": "[bold yellow]INCOMPLETE[/]",
}


def short(digest: object, hex_digits: int = 16) -> str:
    """A digest shortened to fit a terminal line (`sha256:0123456789abcdef…`); --json prints it whole."""
    text = str(digest)
    algorithm, _, hex_part = text.partition(":")
    return text if len(hex_part) <= hex_digits else f"{algorithm}:{hex_part[:hex_digits]}…"


def plain(text: object) -> Text:
    """A value shown as it is: `[batch,16]` is a shape, not rich markup."""
    return Text(str(text))


def manifest_table(signed: SignedManifest) -> Table:
    body = signed.body
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    rows = [
        ("model", body.ref),
        ("manifest id", short(signed.id)),
        ("blob", f"{short(body.blob)} ({body.size:,} bytes, {body.format}, opset {body.opset})"),
        ("inputs", ", ".join(f"{s.name}: {s.describe()}" for s in body.inputs)),
        ("outputs", ", ".join(f"{s.name}: {s.describe()}" for s in body.outputs)),
        ("policy", body.policy.describe() + ("" if body.policy.allow_nan else ", NaN refused")),
        ("publisher", body.publisher.key_id),
        ("created", body.created),
        ("parent", short(body.parent) if body.parent else "-"),
    ]
    if body.description:
        rows.append(("description", body.description))
    if body.license:
        rows.append(("license", body.license))
    for key, value in rows:
        table.add_row(key, plain(value))
    return table


def tensors_table(title: str, tensors: Mapping[str, np.ndarray], preview: int = 8) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("name", style="bold")
    table.add_column("tensor")
    table.add_column("values", overflow="fold")
    for name, array in tensors.items():
        flat = array.reshape(-1)
        shown = np.array2string(flat[:preview], precision=5, separator=", ", max_line_width=200)
        more = f" … ({flat.size - preview} more; digest {short(tensor_digest(array))})" if flat.size > preview else ""
        table.add_row(escape(name), plain(describe_array(array)), plain(shown + more))
    return table


def receipt_table(bundle: Bundle) -> Table:
    receipt = bundle.receipt.body
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in (
        ("receipt", short(bundle.receipt.id)),
        ("request", receipt.request_id),
        ("node", receipt.node.key_id),
        ("runtime", receipt.runtime.runtime_class),
        ("time", receipt.timestamp),
    ):
        table.add_row(key, plain(value))
    if bundle.log_proof is not None:
        proof = TlogProof.parse(bundle.log_proof)
        checkpoint = proof.checkpoint.checkpoint
        cosigners = len(proof.checkpoint.note.signatures) - 1
        table.add_row("log", f"entry {proof.index} of {checkpoint.origin}, checkpoint size {checkpoint.size}, "
                      f"{cosigners} cosignature(s)")  # fmt: skip
    return table


def report_table(report: Report) -> Table:
    table = Table(title=f"verification at level '{report.level}'", title_justify="left")
    table.add_column("check", style="bold")
    table.add_column("required")
    table.add_column("status")
    table.add_column("detail", overflow="fold")
    for check in report.checks:
        table.add_row(check.name, "yes" if check.required else "", _STATUS_STYLE[check.status], plain(check.detail))
    return table


def print_verdict(console: Console, report: Report) -> None:
    console.print(f"verdict: {_VERDICT_STYLE[report.verdict]}")
    console.print(f"relative to: {report.trust.describe()}")
    if report.verdict == "unanchored":
        console.print("name the keys you trust: --publisher, --node, --witness (see docs/threat-model.md)")
