"""The veriml command-line interface."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from veriml.cli.app import app

        app()
    except KeyboardInterrupt:
        # Ctrl-C while the command is still loading: no traceback, the conventional exit status of SIGINT.
        print(file=sys.stderr)
        raise SystemExit(130) from None


__all__ = ["main"]
