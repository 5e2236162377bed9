"""Prometheus metrics: every metric the server exports is defined here, once.

Metrics live in the default registry (one per process) and are served over HTTP on
`SENSORIUM_METRICS_PORT`. Label values are bounded (method names, status codes, services,
fixed outcomes) so the series count stays small.
"""

from __future__ import annotations

import logging
import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

# Latency buckets from a 1 ms no-op call to a multi-minute transcription.
_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 180, 600)

REQUESTS = Counter(
    "sensorium_grpc_requests", "gRPC calls finished, by method and status code.", ["method", "code"]
)
REQUEST_SECONDS = Histogram(
    "sensorium_grpc_request_duration_seconds", "Wall time of gRPC calls.", ["method"],
    buckets=_LATENCY,
)
IN_FLIGHT = Gauge("sensorium_grpc_requests_in_flight", "gRPC calls being served.", ["method"])
RECEIVED_BYTES = Counter(
    "sensorium_grpc_received_bytes", "Serialized request bytes received.", ["method"]
)
SENT_BYTES = Counter("sensorium_grpc_sent_bytes", "Serialized response bytes sent.", ["method"])

SERVICE_READY = Gauge(
    "sensorium_service_ready", "1 when a hosted service is SERVING, else 0.", ["service"]
)
QUEUE_DEPTH = Gauge("sensorium_queue_depth", "Items waiting in a service's queue.", ["queue"])
BATCH_SIZE = Histogram(
    "sensorium_batch_size", "Items per model batch.", ["model"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
MODEL_SECONDS = Histogram(
    "sensorium_model_inference_seconds", "Wall time of one model batch.", ["model"],
    buckets=_LATENCY,
)
WORKER_RESTARTS = Counter(
    "sensorium_worker_restarts",
    "Worker processes or threads replaced, by service and reason (recycled, crashed, timeout).",
    ["service", "reason"],
)
BATCH_DROPPED = Counter(
    "sensorium_batch_dropped_items",
    "Items that never reached the model, by reason (overloaded, cancelled, expired, shutdown).",
    ["model", "reason"],
)
UPLOAD_BYTES_IN_FLIGHT = Gauge(
    "sensorium_upload_bytes_in_flight", "Bytes of uploads held by the server right now."
)

AUTH_TOKENS = Gauge(
    "sensorium_auth_tokens",
    "Bearer tokens in force (0 while the tokens file is unusable: every call is refused).",
)
AUTH_TOKENS_FILE_USABLE = Gauge(
    "sensorium_auth_tokens_file_usable",
    "1 while the tokens file as last changed was read and accepted; 0 while it is unusable "
    "(missing, unparsable, readable by others): then every data-plane call is refused.",
)

PDF_DOCUMENTS = Counter(
    "sensorium_pdf_documents", "PDF documents processed, by outcome (ok or an error reason).",
    ["outcome"],
)
PDF_PAGES = Counter("sensorium_pdf_pages", "PDF pages extracted, by outcome.", ["outcome"])
PDF_SECONDS = Histogram(
    "sensorium_pdf_extraction_seconds", "Wall time to extract one PDF document.", buckets=_LATENCY
)

DOCUMENT_DOCUMENTS = Counter(
    "sensorium_document_documents",
    "Documents (Office, OpenDocument, HTML, text, mail, ...) parsed, by format and outcome (ok or "
    "an error reason).", ["format", "outcome"],
)
DOCUMENT_SECONDS = Histogram(
    "sensorium_document_parse_seconds", "Wall time to parse one document.", buckets=_LATENCY
)

MEDIA_FILES = Counter(
    "sensorium_media_files",
    "Media files processed, by operation (image_text, video_frames) and outcome (ok or an error "
    "reason).", ["operation", "outcome"],
)
MEDIA_SECONDS = Histogram(
    "sensorium_media_seconds", "Wall time of one media file, by operation.", ["operation"],
    buckets=_LATENCY,
)
MEDIA_TEXT = Counter(
    "sensorium_media_text_checks",
    "Images by what happened about text: READ (recognised), NO_TEXT (the cheap check found "
    "none), SKIPPED, DISABLED.", ["status"],
)


class BatchMetrics:
    """The Batcher's observer (`sensorium.batching.BatchObserver`), recording into Prometheus.
    The batcher's name is the `model` / `queue` label."""

    def queue_depth(self, batcher: str, depth: int) -> None:
        QUEUE_DEPTH.labels(batcher).set(depth)

    def batch_done(self, batcher: str, size: int, model_seconds: float, failed: bool) -> None:
        BATCH_SIZE.labels(batcher).observe(size)
        MODEL_SECONDS.labels(batcher).observe(model_seconds)

    def dropped(self, batcher: str, reason: str) -> None:
        BATCH_DROPPED.labels(batcher, reason).inc()


class MetricsEndpoint:
    """The HTTP endpoint Prometheus scrapes, on its own thread."""

    def __init__(self, port: int, host: str = "0.0.0.0") -> None:
        self._server: WSGIServer
        self._thread: threading.Thread
        self._server, self._thread = start_http_server(port, addr=host)
        self.port: int = self._server.server_port
        log.info("metrics endpoint listening port=%d", self.port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
