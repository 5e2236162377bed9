"""Failed calls to a server as the one seam reports them (`sensorium.engines`): the domain
error the server sent (`RemoteError`), or `EnginesUnavailable` when the server cannot be used.
Every `<service>/remote.py` wraps its calls in `remote_errors`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sensorium.errors import Reason, SensoriumError

if TYPE_CHECKING:
    from sensorium.client import ClientError

_UNUSABLE = frozenset({Reason.NOT_HOSTED, Reason.UNAUTHENTICATED, Reason.PERMISSION_DENIED})


class EnginesUnavailable(Exception):
    """The engines cannot be reached or started (no server answers, it refuses this client, it
    does not host the service): nothing the caller retries per item will help."""


@dataclass(eq=False)
class RemoteError(SensoriumError):
    """A server's answer to a failed call, as a domain error; `status` is how the server put it
    ("INVALID_ARGUMENT PDF_UNREADABLE: ..."), for a front end that shows it as it came."""

    status: str = ""


@contextlib.asynccontextmanager
async def remote_errors(target: str) -> AsyncIterator[None]:
    """Turn a failed gRPC call inside into the seam's errors (see `remote_error`)."""
    from sensorium.client import ClientError

    try:
        yield
    except ClientError as exc:
        raise remote_error(exc, target) from None


def remote_error(exc: ClientError, target: str) -> Exception:
    """A failed call as the seam reports it: the domain error the server sent; OVERLOADED for a
    missed deadline (worth retrying later); `EnginesUnavailable` when the server cannot be used
    at all; INTERNAL_ERROR for anything else it answered."""
    import grpc

    details = exc.details
    shown = f"{details}{_oversized_hint(exc)}"
    reason = Reason[details.reason] if details.reason in Reason.__members__ else None
    if reason in _UNUSABLE:
        return EnginesUnavailable(shown)
    if reason is not None:
        return RemoteError(reason, details.message, details.metadata,
                           retry_after_seconds=details.retry_after_seconds, status=shown)
    if details.code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return RemoteError(Reason.OVERLOADED, f"the server at {target} did not answer within the deadline",
                           status=shown)
    if details.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAUTHENTICATED,
                        grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNIMPLEMENTED):
        return EnginesUnavailable(shown)
    return RemoteError(Reason.INTERNAL_ERROR, f"the server at {target} answered {details}", status=shown)


def _oversized_hint(exc: ClientError) -> str:
    """What to do about a request gRPC itself refused as larger than the server's message limit:
    that refusal comes before any Sensorium code runs, so it carries no reason, and retrying
    the same request cannot succeed (docs/errors.md)."""
    details = exc.details
    refused = details.code.name == "RESOURCE_EXHAUSTED" and not details.reason
    if not refused or "larger than max" not in details.message:
        return ""
    return (" (the request is larger than the server accepts in one message, its "
            "SENSORIUM_MAX_RECEIVE_MESSAGE_BYTES; do not retry it as is: send fewer or smaller files)")
