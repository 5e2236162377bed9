"""Every service Sensorium defines, in one typed registry: `SERVICES[name]` says how to build
its runtime, how the gRPC server exposes it, and how its model weights are prepared.

The server, the CLI (its service lists, `sensorium models`) and the index job all read this
table. Each factory imports its service's modules only when called, so a PDF-only install
never imports torch, and this module imports neither gRPC nor generated protobuf.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from sensorium.budget import ByteBudget
from sensorium.device import DeviceGate, Library
from sensorium.settings import ServiceName, Settings

if TYPE_CHECKING:
    import grpc


@dataclass(frozen=True)
class RuntimeContext:
    """What a runtime gets from the process: settings, its CPU share, the shared budgets."""

    settings: Settings
    cpus: int
    """CPUs this service sizes itself for (its share of the process's CPUs)."""
    budget: ByteBudget
    """Memory admission shared by every call in the process."""
    device: DeviceGate


class Runtime(Protocol):
    """What the front ends need of every runtime besides its own typed methods."""

    async def start(self) -> None:
        """Load and warm up the engine; raise `ServiceStartError` saying what to fix."""

    async def close(self, grace: float | None = None) -> None:
        """Stop taking work, finish (within `grace` seconds) or fail what is in work, release
        the engine (worker processes, model memory)."""


@dataclass(frozen=True)
class ServiceSpec:
    """One service: its names, its engine's needs, and its factories."""

    name: ServiceName
    """Short name, as in SENSORIUM_SERVICES."""
    grpc_name: str
    """Fully qualified gRPC service name (health and reflection use it)."""
    summary: str
    """One line for help texts."""
    libraries: tuple[Library, ...]
    """Model libraries whose CUDA support the process's device decision must cover."""
    create_runtime: Callable[[RuntimeContext], Runtime]
    add_servicer: Callable[[grpc.aio.Server, Runtime], None]
    """Register the service's gRPC servicer over `runtime` on a server (before it starts)."""
    prepare_models: Callable[[Settings, Path], str] | None = None
    """Fetch or assemble the weights the settings name into a model directory, returning what
    is there (`sensorium models`); None for a service without weights."""


def _pdf_runtime(context: RuntimeContext) -> Runtime:
    from sensorium.pdf.runtime import PdfRuntime

    return PdfRuntime(context)


def _pdf_servicer(server: grpc.aio.Server, runtime: Runtime) -> None:
    from sensorium.pdf.runtime import PdfRuntime
    from sensorium.pdf.servicer import add_to_server

    assert isinstance(runtime, PdfRuntime)
    add_to_server(server, runtime)


def _transcription_runtime(context: RuntimeContext) -> Runtime:
    from sensorium.transcription.runtime import TranscriptionRuntime

    return TranscriptionRuntime(context)


def _transcription_servicer(server: grpc.aio.Server, runtime: Runtime) -> None:
    from sensorium.transcription.runtime import TranscriptionRuntime
    from sensorium.transcription.servicer import add_to_server

    assert isinstance(runtime, TranscriptionRuntime)
    add_to_server(server, runtime)


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


def _embedding_models(settings: Settings, model_dir: Path) -> str:
    from sensorium.embedding.models import prepare

    return prepare(settings, model_dir)


SERVICES: dict[ServiceName, ServiceSpec] = {
    "pdf": ServiceSpec(
        name="pdf", grpc_name="sensorium.pdf.v1.PdfService",
        summary="PDF text, layout blocks, metadata, images and OCR (PyMuPDF)",
        libraries=(), create_runtime=_pdf_runtime, add_servicer=_pdf_servicer,
    ),
    "transcription": ServiceSpec(
        name="transcription", grpc_name="sensorium.transcription.v1.TranscriptionService",
        summary="speech to timed text (faster-whisper)",
        libraries=("ctranslate2",), create_runtime=_transcription_runtime,
        add_servicer=_transcription_servicer, prepare_models=_transcription_models,
    ),
    "embedding": ServiceSpec(
        name="embedding", grpc_name="sensorium.embedding.v1.EmbeddingService",
        summary="texts and images in one CLIP vector space (open_clip)",
        libraries=("torch",), create_runtime=_embedding_runtime,
        add_servicer=_embedding_servicer, prepare_models=_embedding_models,
    ),
}


def by_grpc_name(grpc_name: str) -> ServiceSpec | None:
    return next((spec for spec in SERVICES.values() if spec.grpc_name == grpc_name), None)
