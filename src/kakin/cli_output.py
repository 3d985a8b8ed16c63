"""Where the ``kakin`` command prints: tables and results on standard output, errors on standard error."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

out = Console(width=None if sys.stdout.isatty() else 120)
err = Console(stderr=True, soft_wrap=True)


def fail(message: str) -> None:
    """Print ``message`` as an error and stop with exit status 2 (a refusal or a malformed input)."""
    err.print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
    raise typer.Exit(2)
