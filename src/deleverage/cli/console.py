"""Consoles shared by the commands. Piped output gets a fixed width wide enough for the
summary and band tables (Rich would otherwise assume 80 columns)."""

import sys

from rich.console import Console

out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)
