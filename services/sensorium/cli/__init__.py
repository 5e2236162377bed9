"""The `sensorium` command: one module per command or group of commands.

`main` (in `sensorium.cli.dispatch`) builds the parser: `serve`, `health`, then the commands each
service of the registry adds (`pdf`, `transcribe`, `embed` and `score`), then `index`, `search`
and `models`. Client commands talk to `--server HOST:PORT`, or, without it, run the engine they
need in this process; either way through the one seam (`sensorium.engines`), so they print the
same. Every failure prints one line naming the status and reason and exits non-zero (the codes:
`sensorium.exits.Exit`); never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """The `sensorium` command. A repeated `sensorium search` is first offered to the running
    query process (`sensorium.cli.search.answer_quickly`), before the rest of the command (the
    settings, the engines, every parser) is imported: that import is most of a warm search."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    if arguments[:1] == ["search"]:
        from sensorium.cli.search import answer_quickly

        code = answer_quickly(arguments)
        if code is not None:
            return code
    from sensorium.cli.dispatch import main as full_command

    return full_command(arguments)
