"""The server-wide byte budget: memory admission for what requests hold.

Per-message size limits alone would let many concurrent calls exhaust memory or disk; every
upload (and every decoded audio file waiting for a model) counts here against
`SENSORIUM_MAX_UPLOAD_BYTES_IN_FLIGHT`, and a call that does not fit is refused at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sensorium import metrics
from sensorium.errors import Reason, SensoriumError


class ByteBudget:
    """Bytes held by requests across all calls (uploads, decoded audio); a call that does not
    fit is refused at once. Used from the event loop only, so it needs no lock."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    @contextlib.contextmanager
    def hold(self, size: int = 0) -> Iterator[Hold]:
        """Hold `size` bytes (more with `Hold.add`) until the block ends, whatever happens."""
        held = Hold(self)
        try:
            held.add(size)
            yield held
        finally:
            self._give(held.size)

    def _take(self, n: int) -> None:
        if self.used + n > self.limit:
            raise SensoriumError(
                Reason.OVERLOADED,
                f"the server holds {self.used} bytes of requests and cannot take {n} more "
                f"(limit {self.limit}); retry shortly",
                retry_after_seconds=1.0, setting="max_upload_bytes_in_flight",
            )
        self.used += n
        metrics.UPLOAD_BYTES_IN_FLIGHT.set(self.used)

    def _give(self, n: int) -> None:
        self.used -= n
        metrics.UPLOAD_BYTES_IN_FLIGHT.set(self.used)


class Hold:
    """Bytes one call holds in a `ByteBudget`; a stream's hold grows as its chunks arrive."""

    def __init__(self, budget: ByteBudget) -> None:
        self._budget = budget
        self.size = 0

    def add(self, n: int) -> None:
        self._budget._take(n)
        self.size += n
