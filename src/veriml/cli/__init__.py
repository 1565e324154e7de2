"""The veriml command-line interface."""

from __future__ import annotations


def main() -> None:
    from veriml.cli.app import app

    app()


__all__ = ["main"]
