"""Per-client limits: calls in flight, and (with `uploads.ByteBudget`) upload bytes held.

A client is what `auth.client_identity` names: its token, else its TLS client certificate's
subject, else its IP address. One client must not take every slot a server has: the
server-wide bounds (queues, the upload byte budget) protect the server, these protect the
other clients.
"""

from __future__ import annotations

from contextvars import ContextVar

from sensorium.errors import Reason, SensoriumError

CURRENT_CLIENT: ContextVar[str | None] = ContextVar("sensorium_current_client", default=None)
"""The client of the call being served. The interceptor sets it before the servicer runs;
the byte budget reads it where an upload's bytes are taken, deep in the servicers, which know
nothing of callers. A context variable reaches there without threading the identity through
every servicer and runtime signature, and it is per call: grpc.aio serves each call in its
own task, and tasks copy the context they start with (so do `asyncio.to_thread` workers)."""

RETRY_AFTER_SECONDS = 1.0
"""The RetryInfo delay of a CLIENT_LIMIT refusal: the client waits for one of its own calls."""


class CallLimiter:
    """Calls in flight per client; `limit` 0 = unlimited."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight: dict[str, int] = {}

    def acquire(self, client: str) -> None:
        """Count a call of `client`, or refuse it with CLIENT_LIMIT; pair with `release`."""
        if not self.limit:
            return
        held = self.in_flight.get(client, 0)
        if held >= self.limit:
            raise SensoriumError(
                Reason.CLIENT_LIMIT,
                f"this client ({client}) already has {held} calls in flight, the most one client "
                f"may have; wait for one to finish",
                {"limit_calls": str(self.limit)},
                retry_after_seconds=RETRY_AFTER_SECONDS, setting="limits.max_calls_per_client",
            )
        self.in_flight[client] = held + 1

    def release(self, client: str) -> None:
        if not self.limit:
            return
        held = self.in_flight.get(client, 0) - 1
        if held > 0:
            self.in_flight[client] = held
        else:
            self.in_flight.pop(client, None)  # keep the map as small as the set of active clients
