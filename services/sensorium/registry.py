"""Every service Sensorium runs, in one table: `SERVICES[name]` says how to build its runtime,
how the gRPC server exposes it, how a client reaches it remotely, which CLI commands it adds,
and how its model weights are prepared.

The server, the CLI, `sensorium models`, the one seam (`sensorium.engines`) and the index job
all read this table; `register` adds a row (an engine that lives outside this package). Each
factory imports its service's modules only when called, so a PDF-only install never imports
torch, and this module imports neither gRPC nor generated protobuf.
"""

from __future__ import annotations

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


def _pdf_runtime(context: RuntimeContext) -> Runtime:
    from sensorium.pdf.runtime import PdfRuntime

    return PdfRuntime(context)


def _pdf_servicer(server: grpc.aio.Server, runtime: Runtime) -> None:
    from sensorium.pdf.runtime import PdfRuntime
    from sensorium.pdf.servicer import add_to_server

    assert isinstance(runtime, PdfRuntime)
    add_to_server(server, runtime)


def _pdf_remote(client: Client, settings: Settings) -> Any:
    from sensorium.pdf.remote import RemotePdf

    return RemotePdf(client)


def _transcription_runtime(context: RuntimeContext) -> Runtime:
    from sensorium.transcription.runtime import TranscriptionRuntime

    return TranscriptionRuntime(context)


def _transcription_servicer(server: grpc.aio.Server, runtime: Runtime) -> None:
    from sensorium.transcription.runtime import TranscriptionRuntime
    from sensorium.transcription.servicer import add_to_server

    assert isinstance(runtime, TranscriptionRuntime)
    add_to_server(server, runtime)


def _transcription_remote(client: Client, settings: Settings) -> Any:
    from sensorium.transcription.remote import RemoteTranscription

    return RemoteTranscription(client)


def _transcription_models(settings: Settings, model_dir: Path) -> str:
    from sensorium.transcription.models import prepare

    return prepare(settings, model_dir)


def _embedding_runtime(context: RuntimeContext) -> Runtime:
    from sensorium.embedding.runtime import EmbeddingRuntime

    return EmbeddingRuntime(context)


def _embedding_servicer(server: grpc.aio.Server, runtime: Runtime) -> None:
    from sensorium.embedding.runtime import EmbeddingRuntime
    from sensorium.embedding.servicer import add_to_server

    assert isinstance(runtime, EmbeddingRuntime)
    add_to_server(server, runtime)


def _embedding_remote(client: Client, settings: Settings) -> Any:
    from sensorium.embedding.remote import RemoteEmbedding

    return RemoteEmbedding(client, settings)


def _embedding_models(settings: Settings, model_dir: Path) -> str:
    from sensorium.embedding.models import prepare

    return prepare(settings, model_dir)


def _document_runtime(context: RuntimeContext) -> Runtime:
    from sensorium.document.runtime import DocumentRuntime

    return DocumentRuntime(context)


def _document_servicer(server: grpc.aio.Server, runtime: Runtime) -> None:
    from sensorium.document.runtime import DocumentRuntime
    from sensorium.document.servicer import add_to_server

    assert isinstance(runtime, DocumentRuntime)
    add_to_server(server, runtime)


def _document_remote(client: Client, settings: Settings) -> Any:
    from sensorium.document.remote import RemoteDocument

    return RemoteDocument(client)


def _media_runtime(context: RuntimeContext) -> Runtime:
    from sensorium.media.runtime import MediaRuntime

    return MediaRuntime(context)


def _media_servicer(server: grpc.aio.Server, runtime: Runtime) -> None:
    from sensorium.media.runtime import MediaRuntime
    from sensorium.media.servicer import add_to_server

    assert isinstance(runtime, MediaRuntime)
    add_to_server(server, runtime)


def _media_remote(client: Client, settings: Settings) -> Any:
    from sensorium.media.remote import RemoteMedia

    return RemoteMedia(client)


def _search_runtime(context: RuntimeContext) -> Runtime:
    from sensorium.search.runtime import SearchRuntime

    return SearchRuntime(context)


def _search_servicer(server: grpc.aio.Server, runtime: Runtime) -> None:
    from sensorium.search.runtime import SearchRuntime
    from sensorium.search.servicer import add_to_server

    assert isinstance(runtime, SearchRuntime)
    add_to_server(server, runtime)


def _search_remote(client: Client, settings: Settings) -> Any:
    from sensorium.search.remote import RemoteSearch

    return RemoteSearch(client)


KiB = 1024
MiB = 1024 * KiB

SERVICES: dict[str, ServiceSpec] = {
    "pdf": ServiceSpec(
        name="pdf", summary="PDF text, layout blocks, metadata, images and OCR (PyMuPDF)",
        create_runtime=_pdf_runtime, grpc_name="sensorium.pdf.v1.PdfService",
        add_servicer=_pdf_servicer, remote=_pdf_remote, commands=("sensorium.cli.pdf",),
        worker_modules=("sensorium.pdf.workers",),
        # A document of a few MiB; larger ones stream (the CLI streams anything over 4 MiB).
        unary_limits={"ExtractDocument": 8 * MiB},
        streaming={"ExtractDocument": "StreamExtractDocument"},
    ),
    "transcription": ServiceSpec(
        name="transcription", summary="speech to timed text (faster-whisper)",
        create_runtime=_transcription_runtime,
        grpc_name="sensorium.transcription.v1.TranscriptionService",
        add_servicer=_transcription_servicer, remote=_transcription_remote,
        libraries=("ctranslate2",), commands=("sensorium.cli.transcribe",),
        prepare_models=_transcription_models,
        # A few minutes of compressed audio; longer recordings stream.
        unary_limits={"Transcribe": 8 * MiB}, streaming={"Transcribe": "StreamTranscribe"},
        worker_modules=("sensorium.transcription.audio",),
    ),
    "embedding": ServiceSpec(
        name="embedding", summary="texts and images in one CLIP vector space (open_clip)",
        create_runtime=_embedding_runtime, grpc_name="sensorium.embedding.v1.EmbeddingService",
        add_servicer=_embedding_servicer, remote=_embedding_remote, libraries=("torch",),
        commands=("sensorium.cli.embed",), prepare_models=_embedding_models,
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
        create_runtime=_document_runtime, grpc_name="sensorium.document.v1.DocumentService",
        add_servicer=_document_servicer, remote=_document_remote, commands=("sensorium.cli.doc",),
        worker_modules=("sensorium.document.engine",),
        # A document of a few MiB; larger ones, and any with pictures or attachments, stream.
        unary_limits={"ParseDocument": 8 * MiB}, streaming={"ParseDocument": "StreamParseDocument"},
    ),
    "media": ServiceSpec(
        name="media",
        summary="text in images (RapidOCR), video frames by scene (PyAV), photo formats and dates",
        create_runtime=_media_runtime, grpc_name="sensorium.media.v1.MediaService",
        add_servicer=_media_servicer, remote=_media_remote,
        commands=("sensorium.cli.ocr", "sensorium.cli.frames"),
        worker_modules=("sensorium.media.text", "sensorium.media.video", "sensorium.embedding.images"),
        # A phone photo (a 12 MP JPEG is 3-6 MiB, HEIC half that); larger images and every
        # video stream.
        unary_limits={"ReadImageText": 8 * MiB}, streaming={"ReadImageText": "StreamReadImageText"},
    ),
    "search": ServiceSpec(
        name="search", summary="search an index folder, read-only (SENSORIUM_SEARCH__INDEX_DIR)",
        create_runtime=_search_runtime, grpc_name="sensorium.search.v1.SearchService",
        add_servicer=_search_servicer, remote=_search_remote,
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
