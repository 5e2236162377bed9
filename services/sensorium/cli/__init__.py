"""The `sensorium` command: one module per command or group of commands.

`main` (in `sensorium.cli.main`) builds the parser: `serve`, `health`, then the commands each
service of the registry adds (`pdf`, `transcribe`, `embed` and `score`), then `index`, `search`
and `models`. Client commands talk to `--server HOST:PORT`, or, without it, run the engine they
need in this process; either way through the one seam (`sensorium.engines`), so they print the
same. Every failure prints one line naming the status and reason and exits non-zero (the codes:
`sensorium.exits.Exit`); never a traceback.
"""

from sensorium.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
