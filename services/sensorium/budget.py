"""The server-wide byte budget: memory admission for what requests hold.

Per-message size limits alone would let many concurrent calls exhaust memory or disk; every
upload (and every decoded audio file waiting for a model) counts here against
`SENSORIUM_MAX_UPLOAD_BYTES_IN_FLIGHT`, and a call that does not fit is refused at once. With
`SENSORIUM_LIMITS__MAX_UPLOAD_BYTES_PER_CLIENT`, each client's share is bounded too, so one
client cannot take the whole budget.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sensorium import metrics
from sensorium.errors import Reason, SensoriumError
from sensorium.limits import CURRENT_CLIENT, RETRY_AFTER_SECONDS


class ByteBudget:
    """Bytes held by requests across all calls (uploads, decoded audio), and per client
    (`per_client_limit`, 0 = unlimited; the client is `limits.CURRENT_CLIENT`, which the
    interceptor sets for each call); a call that does not fit is refused at once. Used from the
    event loop only, so it needs no lock."""

    def __init__(self, limit: int, per_client_limit: int = 0) -> None:
        self.limit = limit
        self.used = 0
        self.per_client_limit = per_client_limit
        self.per_client: dict[str, int] = {}

    @contextlib.contextmanager
    def hold(self, size: int = 0) -> Iterator[Hold]:
        """Hold `size` bytes (more with `Hold.add`) until the block ends, whatever happens."""
        # The client is read once, here: every byte of the hold is given back to the same one.
        held = Hold(self, CURRENT_CLIENT.get() if self.per_client_limit else None)
        try:
            held.add(size)
            yield held
        finally:
            self._give(held.size, held.client)

    def _take(self, n: int, client: str | None = None) -> None:
        if self.used + n > self.limit:
            raise SensoriumError(
                Reason.OVERLOADED,
                f"the server holds {self.used} bytes of requests and cannot take {n} more "
                f"(limit {self.limit}); retry shortly",
                retry_after_seconds=1.0, setting="max_upload_bytes_in_flight",
            )
        if client is not None:
            held = self.per_client.get(client, 0)
            if held + n > self.per_client_limit:
                raise SensoriumError(
                    Reason.CLIENT_LIMIT,
                    f"this client ({client}) has {held} bytes of requests held by the server and "
                    f"cannot add {n} more (limit {self.per_client_limit}); send fewer files at once",
                    {"limit_bytes": str(self.per_client_limit)},
                    retry_after_seconds=RETRY_AFTER_SECONDS,
                    setting="limits.max_upload_bytes_per_client",
                )
            self.per_client[client] = held + n
        self.used += n
        metrics.UPLOAD_BYTES_IN_FLIGHT.set(self.used)

    def _give(self, n: int, client: str | None = None) -> None:
        self.used -= n
        metrics.UPLOAD_BYTES_IN_FLIGHT.set(self.used)
        if client is not None:
            held = self.per_client.get(client, 0) - n
            if held > 0:
                self.per_client[client] = held
            else:
                self.per_client.pop(client, None)  # as small as the set of active clients


class Hold:
    """Bytes one call holds in a `ByteBudget`; a stream's hold grows as its chunks arrive."""

    def __init__(self, budget: ByteBudget, client: str | None = None) -> None:
        self._budget = budget
        self.client = client
        self.size = 0

    def add(self, n: int) -> None:
        self._budget._take(n, self.client)
        self.size += n
