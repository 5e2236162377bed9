"""A file that tells whether anyone opened it: a FIFO whose writer waits for a reader.

FFmpeg told to read `victim.wav` by a concat script or a playlist would open it. Make the victim
a trap and ask, after the call, whether it was opened: a definitive answer, where access times
are not (relatime, noatime mounts). Test-only code.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def trap(path: Path) -> Iterator[threading.Event]:
    """A FIFO at `path`; the event is set once something opens it for reading."""
    os.mkfifo(path)
    opened = threading.Event()
    done = threading.Event()

    def writer() -> None:
        fd = os.open(path, os.O_WRONLY)  # blocks until a reader opens the FIFO
        if not done.is_set():
            opened.set()
        os.close(fd)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        yield opened
    finally:
        done.set()
        # Release the writer ourselves (it is still waiting when nobody opened the FIFO).
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        thread.join(5)
        os.close(fd)
        path.unlink()
