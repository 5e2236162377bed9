"""The transport side of errors: every `Reason`'s gRPC status code, and the rich status a client
receives (`google.rpc.ErrorInfo` with the reason name, `RetryInfo` for errors worth retrying).

The abort code and the code inside the rich status come from `CODES` alone, or clients'
`rpc_status.from_call` raises. Decoding a failed call lives in `sensorium.client`; per-item
errors (fields of result messages) go both ways here.
"""

from __future__ import annotations

import grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from sensorium.errors import (
    DOMAIN,
    REQUEST_ID,
    SETTING,
    Audience,
    Reason,
    SensoriumError,
    explain,
    setting_variable,
)
from sensorium.type.v1 import errors_pb2

_S = grpc.StatusCode
CODES: dict[Reason, grpc.StatusCode] = {
    **{r: _S.INVALID_ARGUMENT for r in Reason if r.value < 40},
    Reason.PAGE_OUT_OF_RANGE: _S.OUT_OF_RANGE,
    Reason.PDF_PAGE_FAILED: _S.INTERNAL,  # only ever per page; a whole call never fails with it
    Reason.OVERLOADED: _S.RESOURCE_EXHAUSTED,
    Reason.GPU_OUT_OF_MEMORY: _S.RESOURCE_EXHAUSTED,
    Reason.CLIENT_LIMIT: _S.RESOURCE_EXHAUSTED,
    Reason.NOT_READY: _S.UNAVAILABLE,
    Reason.SHUTTING_DOWN: _S.UNAVAILABLE,
    Reason.NOT_HOSTED: _S.UNIMPLEMENTED,
    Reason.PARSER_CRASH: _S.INTERNAL,
    Reason.INTERNAL_ERROR: _S.INTERNAL,
    Reason.UNAUTHENTICATED: _S.UNAUTHENTICATED,
    Reason.PERMISSION_DENIED: _S.PERMISSION_DENIED,
}
"""The status table (README "The API"): every reason's gRPC status code."""

MAX_MESSAGE_BYTES = 1024
MAX_METADATA_VALUE_BYTES = 200
"""A failed call's message and details travel in its trailers, twice (`grpc-message`,
percent-encoded, and `grpc-status-details-bin`), and gRPC clients refuse trailers over 8 KiB by
default, replacing the whole status with RESOURCE_EXHAUSTED "Stream removed". A message that
quotes what the client sent could pass that: both are cut to fit, whatever the error says."""


def code_of(error: SensoriumError) -> grpc.StatusCode:
    return CODES[error.reason]


def to_status(error: SensoriumError, request_id: str) -> grpc.Status:
    """The rich gRPC status for `error`, ready for `context.abort_with_status`."""
    metadata = {**error.metadata, REQUEST_ID: request_id}
    if error.setting:
        metadata[SETTING] = setting_variable(error.setting)
    metadata = {key: _cut(value, MAX_METADATA_VALUE_BYTES) for key, value in metadata.items()}
    info = error_details_pb2.ErrorInfo(reason=error.reason.name, domain=DOMAIN, metadata=metadata)
    message = _cut(explain(error, "client"), MAX_MESSAGE_BYTES)
    status = status_pb2.Status(code=_code_number(code_of(error)), message=message)
    status.details.add().Pack(info)
    if error.retry_after_seconds is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(error.retry_after_seconds * 1e9))
        status.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    rich: grpc.Status = rpc_status.to_status(status)
    return rich


def item_error(error: SensoriumError, audience: Audience = "client") -> errors_pb2.ItemError:
    """`error` as the per-item error field of a result message, with its metadata (limits)."""
    metadata = dict(error.metadata)
    if error.setting:
        metadata[SETTING] = setting_variable(error.setting)
    return errors_pb2.ItemError(reason=error.reason.to_proto(), message=explain(error, audience),
                                metadata=metadata)


def error_from_item(item: errors_pb2.ItemError) -> SensoriumError:
    """A received per-item error as the domain error (its message already says how to change
    a limit, so `setting` stays empty; the variable is in `metadata["setting"]`)."""
    try:
        name = errors_pb2.ErrorReason.Name(item.reason).removeprefix("ERROR_REASON_")
    except ValueError:  # a reason newer than this code
        name = ""
    reason = Reason[name] if name in Reason.__members__ else Reason.INTERNAL_ERROR
    return SensoriumError(reason, item.message, dict(item.metadata))


def _cut(text: str, limit: int) -> str:
    """`text` in at most `limit` UTF-8 bytes, ending in "..." when cut."""
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode(errors="ignore") + "..."


def _code_number(code: grpc.StatusCode) -> int:
    number: int = code.value[0]
    assert code_pb2.Code.Name(number) == code.name  # the two enums share numbering
    return number
