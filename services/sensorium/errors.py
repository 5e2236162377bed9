"""Domain errors and their one mapping to gRPC status codes.

Engines raise `SensoriumError(Reason.X, "what happened and what to do")`; they know nothing
about gRPC. The server turns it into a rich status: the code from `CODES`, a
`google.rpc.ErrorInfo` whose reason is the `sensorium.type.v1.ErrorReason` name, and a
`google.rpc.RetryInfo` for errors worth retrying later. The abort code and the code inside the
rich status come from the same place, or clients' `rpc_status.from_call` raises.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from sensorium.type.v1 import errors_pb2

DOMAIN = "sensorium.dev"
"""`ErrorInfo.domain` of every Sensorium error."""

# Metadata keys a client may find in `ErrorInfo.metadata`; documented in docs/errors.md.
REQUEST_ID = "request_id"


class Reason(enum.IntEnum):
    """Mirror of `sensorium.type.v1.ErrorReason` (values equal; a unit test keeps them in step)."""

    INVALID_REQUEST = 1
    INPUT_EMPTY = 2
    INPUT_TOO_LARGE = 3
    PROCESSING_LIMIT = 4
    UNSUPPORTED_TYPE = 5
    PDF_UNREADABLE = 10
    PDF_NO_PAGES = 11
    PDF_PASSWORD_REQUIRED = 12
    PDF_PASSWORD_INCORRECT = 13
    PDF_TOO_MANY_PAGES = 14
    PDF_PAGE_FAILED = 15
    PAGE_OUT_OF_RANGE = 16
    IMAGE_UNDECODABLE = 20
    IMAGE_TOO_LARGE = 21
    TEXT_TOO_LONG = 22
    AUDIO_UNDECODABLE = 30
    AUDIO_TOO_LONG = 31
    AUDIO_TRUNCATED = 32
    OVERLOADED = 40
    GPU_OUT_OF_MEMORY = 41
    NOT_READY = 50
    SHUTTING_DOWN = 51
    NOT_HOSTED = 60
    PARSER_CRASH = 70
    INTERNAL_ERROR = 71

    def to_proto(self) -> str:
        """The proto enum value's name (protobuf accepts names wherever an enum goes)."""
        return f"ERROR_REASON_{self.name}"


_S = grpc.StatusCode
CODES: dict[Reason, grpc.StatusCode] = {
    **{r: _S.INVALID_ARGUMENT for r in Reason if r.value < 40},
    Reason.PAGE_OUT_OF_RANGE: _S.OUT_OF_RANGE,
    Reason.PDF_PAGE_FAILED: _S.INTERNAL,  # only ever per page; a whole call never fails with it
    Reason.OVERLOADED: _S.RESOURCE_EXHAUSTED,
    Reason.GPU_OUT_OF_MEMORY: _S.RESOURCE_EXHAUSTED,
    Reason.NOT_READY: _S.UNAVAILABLE,
    Reason.SHUTTING_DOWN: _S.UNAVAILABLE,
    Reason.NOT_HOSTED: _S.UNIMPLEMENTED,
    Reason.PARSER_CRASH: _S.INTERNAL,
    Reason.INTERNAL_ERROR: _S.INTERNAL,
}
"""The DESIGN.md status table: every reason's gRPC status code."""


@dataclass(eq=False)
class SensoriumError(Exception):
    """A failure with a known cause: `message` says what happened and what to do about it."""

    reason: Reason
    message: str
    metadata: dict[str, str] = field(default_factory=dict)
    retry_after_seconds: float | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __reduce__(self) -> tuple[Any, ...]:
        # Errors cross process boundaries (PDF workers); keep every field through pickling.
        return (SensoriumError, (self.reason, self.message, self.metadata, self.retry_after_seconds))

    def __str__(self) -> str:
        return f"{self.reason.name}: {self.message}"

    @property
    def code(self) -> grpc.StatusCode:
        return CODES[self.reason]


def internal_error(request_id: str) -> SensoriumError:
    """The answer to an unexpected exception: no exception text, only a handle into the logs."""
    return SensoriumError(
        Reason.INTERNAL_ERROR,
        f"internal server error; quote request id {request_id} when reporting it",
        {REQUEST_ID: request_id},
    )


def to_status(error: SensoriumError, request_id: str) -> grpc.Status:
    """The rich gRPC status for `error`, ready for `context.abort_with_status`."""
    info = error_details_pb2.ErrorInfo(
        reason=error.reason.name, domain=DOMAIN, metadata={**error.metadata, REQUEST_ID: request_id}
    )
    status = status_pb2.Status(code=_code_number(error.code), message=error.message)
    status.details.add().Pack(info)
    if error.retry_after_seconds is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(error.retry_after_seconds * 1e9))
        status.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    rich: grpc.Status = rpc_status.to_status(status)
    return rich


def item_error(error: SensoriumError) -> errors_pb2.ItemError:
    """`error` as the per-item error field of a result message."""
    return errors_pb2.ItemError(reason=error.reason.to_proto(), message=error.message)


@dataclass(frozen=True)
class ErrorDetails:
    """What a client learns from a failed call (see `details_from_rpc_error`)."""

    code: grpc.StatusCode
    message: str
    reason: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    retry_after_seconds: float | None = None

    def __str__(self) -> str:
        reason = f" {self.reason}" if self.reason else ""
        return f"{self.code.name}{reason}: {self.message}"


def details_from_rpc_error(error: grpc.RpcError) -> ErrorDetails:
    """Decode the rich status of a failed call; plain statuses give code and message only."""
    call: Any = error
    code: grpc.StatusCode = call.code()
    message: str = call.details() or ""
    status = rpc_status.from_call(call)
    if status is None:
        return ErrorDetails(code, message)
    reason, metadata, retry = "", {}, None
    for detail in status.details:
        info, delay = error_details_pb2.ErrorInfo(), error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            reason, metadata = info.reason, dict(info.metadata)
        elif detail.Unpack(delay):
            retry = delay.retry_delay.ToNanoseconds() / 1e9
    return ErrorDetails(code, status.message, reason, metadata, retry)


def _code_number(code: grpc.StatusCode) -> int:
    number: int = code.value[0]
    assert code_pb2.Code.Name(number) == code.name  # the two enums share numbering
    return number
