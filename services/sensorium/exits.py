"""The exit status of every `sensorium` command: one table (README "Commands", docs/index.md)."""

from __future__ import annotations

import enum


class Exit(enum.IntEnum):
    OK = 0
    """Done (the index job: it ran; files it could not index are rows with their reason)."""
    FAILED = 1
    """The call failed (the error line names the status and reason), or a health check is not
    SERVING."""
    USAGE = 2
    """Bad usage: flags, settings, or (health) no server answered."""
    CONFIG = 3
    """The configuration cannot work: a service or model that does not start, an index of
    another model or options."""
    OUTPUT = 4
    """The index folder cannot be used: not writable, locked by another job, not an index."""
    TRANSIENT = 5
    """Worth retrying: the --server cannot be reached."""
    INTERRUPTED = 130
    """Ctrl-C."""
    BROKEN_PIPE = 141
    """The reader of the output went away (`sensorium pdf x.pdf | head`), as for other tools."""
