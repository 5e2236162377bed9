import pickle

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from sensorium import errors, status
from sensorium.errors import Reason, SensoriumError
from sensorium.status import CODES
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
    assert status.code_of(SensoriumError(reason, "x")) == code


def test_errors_survive_pickling_across_processes():
    error = SensoriumError(Reason.OVERLOADED, "busy", {"a": "b"}, retry_after_seconds=1.5,
                           setting="pdf.max_pending_documents")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.reason, copy.message, copy.metadata, copy.retry_after_seconds, copy.setting) == (
        Reason.OVERLOADED, "busy", {"a": "b"}, 1.5, "pdf.max_pending_documents")


def test_rich_status_carries_reason_request_id_and_retry():
    error = SensoriumError(Reason.OVERLOADED, "queue full", {"queue": "pdf"}, retry_after_seconds=2)
    rich = status.to_status(error, "req-1")
    assert rich.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    (key, blob), = rich.trailing_metadata
    assert key == "grpc-status-details-bin"
    decoded = status_pb2.Status.FromString(blob)
    assert decoded.code == 8 and decoded.message == "queue full"
    info, retry = error_details_pb2.ErrorInfo(), error_details_pb2.RetryInfo()
    assert decoded.details[0].Unpack(info) and decoded.details[1].Unpack(retry)
    assert info.reason == "OVERLOADED" and info.domain == errors.DOMAIN
    assert dict(info.metadata) == {"queue": "pdf", "request_id": "req-1"}
    assert retry.retry_delay.seconds == 2


def test_a_status_quoting_huge_input_still_fits_in_clients_trailers():
    # gRPC clients drop trailers over 8 KiB (the status with them): found by the fuzz test.
    error = SensoriumError(Reason.INVALID_REQUEST, "unknown language 'é" + "é" * 50_000 + "'",
                           {"method": "/x" * 10_000})
    rich = status.to_status(error, "req-1")
    trailers = dict(rich.trailing_metadata)
    decoded = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    # grpc-message carries the message again, percent-encoded: up to 3 bytes per byte.
    assert 3 * len(decoded.message.encode()) + len(trailers["grpc-status-details-bin"]) * 4 / 3 < 8192
    assert decoded.message.startswith("unknown language 'éé") and decoded.message.endswith("...")
    info = error_details_pb2.ErrorInfo()
    assert decoded.details[0].Unpack(info)
    assert info.metadata["request_id"] == "req-1" and info.metadata["method"].startswith("/x/x")
    short = status.to_status(SensoriumError(Reason.INVALID_REQUEST, "short"), "r")
    blob = dict(short.trailing_metadata)["grpc-status-details-bin"]
    assert status_pb2.Status.FromString(blob).message == "short"


def test_internal_error_reveals_only_the_request_id():
    error = errors.internal_error("abc123")
    assert status.code_of(error) == grpc.StatusCode.INTERNAL
    assert "abc123" in error.message and "Traceback" not in error.message


def test_item_error():
    item = status.item_error(SensoriumError(Reason.IMAGE_TOO_LARGE, "too big"))
    assert item.reason == errors_pb2.ERROR_REASON_IMAGE_TOO_LARGE and item.message == "too big"


def test_a_limit_error_says_how_to_change_it_to_whoever_reads_it():
    error = SensoriumError(Reason.PDF_TOO_MANY_PAGES, "the document has 9 pages, more than 5",
                           setting="pdf.max_pages")
    assert errors.setting_variable("pdf.max_pages") == "SENSORIUM_PDF__MAX_PAGES"
    assert "set SENSORIUM_PDF__MAX_PAGES" in errors.explain(error, "operator")
    assert "operator" in errors.explain(error, "client")
    decoded = status_pb2.Status.FromString(dict(status.to_status(error, "r").trailing_metadata)[
        "grpc-status-details-bin"])
    info = error_details_pb2.ErrorInfo()
    assert decoded.details[0].Unpack(info)
    assert info.metadata["setting"] == "SENSORIUM_PDF__MAX_PAGES"
    assert decoded.message.startswith("the document has 9 pages")
    assert "SENSORIUM_PDF__MAX_PAGES" in decoded.message
    plain = SensoriumError(Reason.PDF_UNREADABLE, "not a PDF")
    assert errors.explain(plain, "client") == errors.explain(plain, "operator") == "not a PDF"


def test_the_domain_error_module_imports_no_transport():
    import subprocess
    import sys

    code = ("import sys, sensorium.errors; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('grpc', 'google')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
