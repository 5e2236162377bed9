"""Every service Sensorium runs, in one table: `SERVICES[name]` says how to build its runtime,
how the gRPC server exposes it, how a client reaches it remotely, which CLI commands it adds,
and how its model weights are prepared.

The server, the CLI, `sensorium models`, the one seam (`sensorium.engines`) and the index job
all read this table; `register` adds a row (an engine that lives outside this package). Each
row names its service's modules as strings (`Load`), imported only when called, so a PDF-only
install never imports torch, this module imports neither gRPC nor generated protobuf, and the
table sits below everything that reads it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sensorium.contract import Runtime, RuntimeContext
from sensorium.device import Library
from sensorium.errors import Reason, SensoriumError
from sensorium.settings import accept_service

if TYPE_CHECKING:
    import grpc

    from sensorium.client import Client
    from sensorium.settings import Settings


@dataclass(frozen=True)
class ServiceSpec:
    """One service: its names, its engine's needs, and its factories."""

    name: str
    """Short name, as in SENSORIUM_SERVICES."""
    summary: str
    """One line for help texts."""
    create_runtime: Callable[[RuntimeContext], Runtime]
    """The runtime; it is also the service's in-process engine interface (`<service>/api.py`)."""
    grpc_name: str = ""
    """Fully qualified gRPC service name (health and reflection use it); "" = no gRPC face."""
    add_servicer: Callable[[grpc.aio.Server, Runtime], None] | None = None
    """Register the service's gRPC servicer over `runtime` on a server (before it starts)."""
    remote: Callable[[Client, Settings], Any] | None = None
    """The service's engine interface over a `Client` of a server that hosts it."""
    unary_limits: Mapping[str, int] = field(default_factory=dict)
    """Largest request message of each unary method ("ExtractDocument": bytes): the transport
    refuses more before any handler runs (`sensorium.transport`; docs/errors.md lists them)."""
    streaming: Mapping[str, str] = field(default_factory=dict)
    """For a unary method, the streaming method that takes what its cap refuses."""
    libraries: tuple[Library, ...] = ()
    """Model libraries whose CUDA support the process's device decision must cover."""
    commands: tuple[str, ...] = ()
    """Modules of CLI commands the service adds; each has `add_parser(commands)`."""
    prepare_models: Callable[[Settings, Path], str] | None = None
    """Fetch or assemble the weights the settings name into a model directory, returning what
    is there (`sensorium models`); None for a service without weights."""
    worker_modules: tuple[str, ...] = ()
    """Modules its worker processes run (`sensorium.workers`): the process's one forkserver
    imports them before it forks any worker, whichever service starts first."""


@dataclass(frozen=True)
class Load:
    """`"package.module:name"`, a callable imported when first called.

    Why strings, not imports: the table names every service's runtime, servicer, remote engine
    and weight preparer, yet must not import them: a PDF-only install never imports torch, and
    the modules it names may sit above it (the search service's runtime reads the index, which
    opens engines through the runtimes, which read this table). tests/unit/test_runtimes.py
    resolves every built-in target."""

    target: str
    arguments: int | None = None
    """Pass only the first this many arguments (None: all); see `_client_only`."""

    def resolve(self) -> Callable[..., Any]:
        module, _, name = self.target.partition(":")
        if not module or not name:
            raise ValueError(f"{self.target!r} is not 'package.module:name'")
        found: Callable[..., Any] = getattr(importlib.import_module(module), name)
        return found

    def __call__(self, *args: Any) -> Any:
        return self.resolve()(*args[: self.arguments])


def _client_only(target: str) -> Load:
    """A remote engine whose constructor takes only the client: every one but embedding's,
    which also reads the settings (its tokenizer)."""
    return Load(target, arguments=1)


KiB = 1024
MiB = 1024 * KiB

SERVICES: dict[str, ServiceSpec] = {
    "pdf": ServiceSpec(
        name="pdf", summary="PDF text, layout blocks, metadata, images and OCR (PyMuPDF)",
        create_runtime=Load("sensorium.pdf.runtime:PdfRuntime"),
        grpc_name="sensorium.pdf.v1.PdfService",
        add_servicer=Load("sensorium.pdf.servicer:add_to_server"),
        remote=_client_only("sensorium.pdf.remote:RemotePdf"),
        commands=("sensorium.cli.pdf",),
        worker_modules=("sensorium.pdf.workers",),
        # A document of a few MiB; larger ones stream (the CLI streams anything over 4 MiB).
        unary_limits={"ExtractDocument": 8 * MiB},
        streaming={"ExtractDocument": "StreamExtractDocument"},
    ),
    "transcription": ServiceSpec(
        name="transcription", summary="speech to timed text (faster-whisper)",
        create_runtime=Load("sensorium.transcription.runtime:TranscriptionRuntime"),
        grpc_name="sensorium.transcription.v1.TranscriptionService",
        add_servicer=Load("sensorium.transcription.servicer:add_to_server"),
        remote=_client_only("sensorium.transcription.remote:RemoteTranscription"),
        libraries=("ctranslate2",), commands=("sensorium.cli.transcribe",),
        prepare_models=Load("sensorium.transcription.models:prepare"),
        # A few minutes of compressed audio; longer recordings stream.
        unary_limits={"Transcribe": 8 * MiB}, streaming={"Transcribe": "StreamTranscribe"},
        worker_modules=("sensorium.transcription.audio",),
    ),
    "embedding": ServiceSpec(
        name="embedding", summary="texts and images in one CLIP vector space (open_clip)",
        create_runtime=Load("sensorium.embedding.runtime:EmbeddingRuntime"),
        grpc_name="sensorium.embedding.v1.EmbeddingService",
        add_servicer=Load("sensorium.embedding.servicer:add_to_server"),
        remote=Load("sensorium.embedding.remote:RemoteEmbedding"),
        libraries=("torch",),
        commands=("sensorium.cli.embed",), prepare_models=Load("sensorium.embedding.models:prepare"),
        unary_limits={
            # 256 texts (SENSORIUM_EMBEDDING__MAX_ITEMS_PER_REQUEST) of 64 KiB of ASCII each.
            "EmbedTexts": 16 * MiB,
            # 64 photos of up to 512 KiB each (a 640x480 JPEG is ~50-150 KiB); bigger sets
            # stream, one image per message, through StreamEmbed.
            "EmbedImages": 32 * MiB, "Score": 32 * MiB, "GetEmbeddingSpace": 4 * KiB,
        },
        streaming={"EmbedTexts": "StreamEmbed", "EmbedImages": "StreamEmbed"},
    ),
    "document": ServiceSpec(
        name="document",
        summary="Office, OpenDocument, RTF, EPUB, HTML, text, CSV, subtitles and mail: text with "
        "locators, metadata, pictures, attachments",
        create_runtime=Load("sensorium.document.runtime:DocumentRuntime"),
        grpc_name="sensorium.document.v1.DocumentService",
        add_servicer=Load("sensorium.document.servicer:add_to_server"),
        remote=_client_only("sensorium.document.remote:RemoteDocument"),
        commands=("sensorium.cli.doc",),
        worker_modules=("sensorium.document.engine",),
        # A document of a few MiB; larger ones, and any with pictures or attachments, stream.
        unary_limits={"ParseDocument": 8 * MiB}, streaming={"ParseDocument": "StreamParseDocument"},
    ),
    "media": ServiceSpec(
        name="media",
        summary="text in images (RapidOCR), video frames by scene (PyAV), photo formats and dates",
        create_runtime=Load("sensorium.media.runtime:MediaRuntime"),
        grpc_name="sensorium.media.v1.MediaService",
        add_servicer=Load("sensorium.media.servicer:add_to_server"),
        remote=_client_only("sensorium.media.remote:RemoteMedia"),
        commands=("sensorium.cli.ocr", "sensorium.cli.frames"),
        worker_modules=("sensorium.media.text", "sensorium.media.video", "sensorium.embedding.images"),
        # A phone photo (a 12 MP JPEG is 3-6 MiB, HEIC half that); larger images and every
        # video stream.
        unary_limits={"ReadImageText": 8 * MiB}, streaming={"ReadImageText": "StreamReadImageText"},
    ),
    "search": ServiceSpec(
        name="search", summary="search an index folder, read-only (SENSORIUM_SEARCH__INDEX_DIR)",
        create_runtime=Load("sensorium.search.runtime:SearchRuntime"),
        grpc_name="sensorium.search.v1.SearchService",
        add_servicer=Load("sensorium.search.servicer:add_to_server"),
        remote=_client_only("sensorium.search.remote:RemoteSearch"),
        # A query image of a few MiB (a phone photo); a text query is tiny.
        unary_limits={"Search": 16 * MiB},
    ),
}


def register(service: ServiceSpec) -> None:
    """Add a service to the table (an engine that lives outside this package; see
    docs/architecture.md). Its name must be new."""
    if service.name in SERVICES:
        raise ValueError(f"a service named {service.name!r} is registered already")
    SERVICES[service.name] = service
    accept_service(service.name)


def spec(name: str) -> ServiceSpec:
    """The row of `name`; NOT_HOSTED naming the known services for an unknown one."""
    try:
        return SERVICES[name]
    except KeyError:
        raise SensoriumError(
            Reason.NOT_HOSTED, f"no service is called {name!r}; the services are {', '.join(SERVICES)}"
        ) from None


def by_grpc_name(grpc_name: str) -> ServiceSpec | None:
    return next((s for s in SERVICES.values() if s.grpc_name and s.grpc_name == grpc_name), None)
