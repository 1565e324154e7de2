"""Options that several commands take the same way, declared once."""

from __future__ import annotations

from typing import Annotated

import typer

PublisherPins = Annotated[
    list[str] | None,
    typer.Option("--publisher", help="with --node: accept the model only from this publisher key (repeatable)"),
]
Privacy = Annotated[
    str,
    typer.Option(
        help="private (data kept by no node, never disclosed), auditable (only to authenticated auditors) or "
        "public (readable by anyone)"
    ),
]
