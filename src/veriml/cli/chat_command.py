"""`veriml chat`: ask a language model, print the reply as it streams, then the receipt that proves it. Locally
(this home's model and log) or through nodes (`--node`), where `--verify quorum:K` makes K nodes agree."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from veriml.cli import render
from veriml.cli.errors import one_line_errors
from veriml.cli.options import Privacy, PublisherPins
from veriml.errors import InvalidInput
from veriml.receipts import check_privacy

console = Console()


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


@one_line_errors
def chat(
    ref: Annotated[str, typer.Argument(help="a gguf model: owner/name, owner/name@N, or a manifest id")],
    prompt: Annotated[str, typer.Argument(help="what to ask")],
    system: Annotated[str | None, typer.Option(help="a system message before the prompt")] = None,
    max_tokens: Annotated[int, typer.Option(help="the most tokens to generate")] = 128,
    temperature: Annotated[float, typer.Option(help="0 decodes greedily (exact); above 0 samples with --seed")] = 0.0,
    seed: Annotated[int | None, typer.Option(help="sampling seed, recorded in the receipt [default: random]")] = None,
    stop: Annotated[list[str] | None, typer.Option("--stop", help="stop sequence (repeatable)")] = None,
    node: Annotated[list[str] | None, typer.Option("--node", help="node URL (repeatable) [default: run here]")] = None,
    verify: Annotated[str, typer.Option(help="with --node: signed, logged or quorum:K")] = "signed",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="where to write the bundle")] = None,
    publisher: PublisherPins = None,
    privacy: Privacy = "auditable",
) -> None:
    """Ask a language model; the reply streams, then the receipt summary prints and the bundle is written.
    Through nodes, the streamed text is provisional: at the end it must be what the signed tokens decode to, and
    the signed prompt the tokenization of these messages (checked here; needs the `llm` extra), else an error.

    Example: veriml chat smol/lm "Name the capital of France." --node http://127.0.0.1:8700 --verify quorum:3
    """
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    check_privacy(privacy)
    if node:
        from veriml.client import Client

        with Client(node, publishers=publisher or []) as client:
            # logged: the bundle waits for its checkpoint, cosigned by another node, so `verify` can check it all.
            result = client.chat(ref, messages, verify=verify, max_tokens=max_tokens, temperature=temperature,
                                 seed=seed, stop=stop, on_text=_write, logged=True, privacy=privacy)  # fmt: skip
        bundle, finish = result.bundle, result.finish_reason
    else:
        if verify != "signed":
            raise InvalidInput("--verify needs --node: a local run is signed by this home's node key")
        import secrets

        from veriml.cli.app import home
        from veriml.runtime import GenerationParams
        from veriml.service import Service

        if seed is None:
            seed = secrets.randbelow(2**32) if temperature > 0 else 0
        params = GenerationParams(max_tokens=max_tokens, temperature=temperature, seed=seed, stop=tuple(stop or ()))
        with Service(home()) as service:
            generation, bundle, index = service.chat(ref, messages, params, on_text=_write, privacy=privacy)
            assert index is not None
            bundle = service.attach_proof(bundle, index)
        finish = generation.finish_reason
    _write("\n")
    target = out or Path(f"veriml-{bundle.receipt.body.request_id}.bundle.json")
    bundle.save(target)
    tokens = bundle.outputs["tokens"].size
    console.print(f"[dim]{tokens} tokens, finish: {finish}, {len(bundle.attestations) + 1} node(s) signed[/]")
    console.print(render.receipt_table(bundle))
    console.print(f"bundle written to [bold]{target}[/]; check it with `veriml verify {target} --reexec`")
