import pickle

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from sensorium import errors
from sensorium.errors import CODES, Reason, SensoriumError
from sensorium.type.v1 import errors_pb2


def test_python_reasons_mirror_the_proto_enum():
    proto = {name.removeprefix("ERROR_REASON_"): value
             for name, value in errors_pb2.ErrorReason.items() if value}
    assert {r.name: r.value for r in Reason} == proto


def test_every_reason_has_a_status_code():
    assert set(CODES) == set(Reason)


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        (Reason.PDF_PASSWORD_REQUIRED, grpc.StatusCode.INVALID_ARGUMENT),
        (Reason.AUDIO_TOO_LONG, grpc.StatusCode.INVALID_ARGUMENT),
        (Reason.PROCESSING_LIMIT, grpc.StatusCode.INVALID_ARGUMENT),
        (Reason.PAGE_OUT_OF_RANGE, grpc.StatusCode.OUT_OF_RANGE),
        (Reason.OVERLOADED, grpc.StatusCode.RESOURCE_EXHAUSTED),
        (Reason.GPU_OUT_OF_MEMORY, grpc.StatusCode.RESOURCE_EXHAUSTED),
        (Reason.NOT_READY, grpc.StatusCode.UNAVAILABLE),
        (Reason.SHUTTING_DOWN, grpc.StatusCode.UNAVAILABLE),
        (Reason.NOT_HOSTED, grpc.StatusCode.UNIMPLEMENTED),
        (Reason.PARSER_CRASH, grpc.StatusCode.INTERNAL),
        (Reason.INTERNAL_ERROR, grpc.StatusCode.INTERNAL),
        (Reason.CLIENT_LIMIT, grpc.StatusCode.RESOURCE_EXHAUSTED),
        (Reason.UNAUTHENTICATED, grpc.StatusCode.UNAUTHENTICATED),
        (Reason.PERMISSION_DENIED, grpc.StatusCode.PERMISSION_DENIED),
    ],
)
def test_design_status_table(reason, code):
    assert SensoriumError(reason, "x").code == code


def test_errors_survive_pickling_across_processes():
    error = SensoriumError(Reason.OVERLOADED, "busy", {"a": "b"}, retry_after_seconds=1.5)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.reason, copy.message, copy.metadata, copy.retry_after_seconds) == (
        Reason.OVERLOADED, "busy", {"a": "b"}, 1.5)


def test_rich_status_carries_reason_request_id_and_retry():
    error = SensoriumError(Reason.OVERLOADED, "queue full", {"queue": "pdf"}, retry_after_seconds=2)
    status = errors.to_status(error, "req-1")
    assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    (key, blob), = status.trailing_metadata
    assert key == "grpc-status-details-bin"
    decoded = status_pb2.Status.FromString(blob)
    assert decoded.code == 8 and decoded.message == "queue full"
    info, retry = error_details_pb2.ErrorInfo(), error_details_pb2.RetryInfo()
    assert decoded.details[0].Unpack(info) and decoded.details[1].Unpack(retry)
    assert info.reason == "OVERLOADED" and info.domain == errors.DOMAIN
    assert dict(info.metadata) == {"queue": "pdf", "request_id": "req-1"}
    assert retry.retry_delay.seconds == 2


def test_internal_error_reveals_only_the_request_id():
    error = errors.internal_error("abc123")
    assert error.code == grpc.StatusCode.INTERNAL
    assert "abc123" in error.message and "Traceback" not in error.message


def test_item_error():
    item = errors.item_error(SensoriumError(Reason.IMAGE_TOO_LARGE, "too big"))
    assert item.reason == errors_pb2.ERROR_REASON_IMAGE_TOO_LARGE and item.message == "too big"
