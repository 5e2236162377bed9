"""What the index job asks of the engines, answered in this process or by a running server.

`Engines` is the job's one view of extraction, transcription and embedding, in domain types:
PDF pages and images as `sensorium.pdf.extractor` makes them, transcript segments as
`TimedText`, vectors as float32 arrays. `InProcessEngines` calls the runtimes of this process
(`sensorium.runtimes.Runtimes`, the same ones the server hosts); `RemoteEngines` calls a
deployment over gRPC (`sensorium.client.Client`) and converts its answers to the same types, so
the job's code has one path and both modes give the same index.

Failures: a whole file that cannot be processed raises `SensoriumError` (a row of the files
table); a server that cannot be reached raises `EnginesUnavailable` (the job stops: a folder of
error rows would say the files were bad). Overload (`OVERLOADED`, `NOT_READY`) is waited out
here, a few times, before it becomes a file's retryable error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from sensorium.errors import Reason, SensoriumError
from sensorium.index.layout import EmbeddingSpace
from sensorium.pdf.extractor import BBox, Block, ExtractOptions, ImageResult, PageResult

if TYPE_CHECKING:
    from sensorium.client import Client, ClientError
    from sensorium.runtimes import Runtimes
    from sensorium.settings import Settings

log = logging.getLogger("sensorium.index")

Vector = npt.NDArray[np.float32]
Embedded = Vector | SensoriumError
"""One item's vector, or the error that kept it from one (the other items are unaffected)."""
PdfItem = PageResult | ImageResult
T = TypeVar("T")

# Items per embedding call: big enough for the Batcher to fill its batches across files,
# small enough that a file's rows do not wait on another file's long list.
EMBED_BATCH = 64
# Attempts at a call refused for overload before the file is recorded as a retryable error.
OVERLOAD_ATTEMPTS = 6
_WAIT_OUT = frozenset({Reason.OVERLOADED, Reason.NOT_READY, Reason.GPU_OUT_OF_MEMORY})


class EnginesUnavailable(Exception):
    """The engines cannot be reached or started: the job cannot go on (see the module docstring)."""


@dataclass(frozen=True)
class TimedText:
    """One transcript segment."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Transcript:
    segments: list[TimedText]
    model: str
    """The Whisper model that made it (checked against the index's manifest)."""
    language: str


@dataclass(frozen=True)
class ModelFacts:
    """What the index's manifest records about the embedding model."""

    space: EmbeddingSpace
    context_length: int


class Engines(Protocol):
    """The job's view of the engines (see the module docstring)."""

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def describe(self) -> ModelFacts: ...
    def count_tokens(self, text: str) -> int: ...
    def extract_pdf(self, path: Path) -> AsyncIterator[list[PdfItem]]: ...
    async def transcribe(self, path: Path) -> Transcript: ...
    async def embed_texts(self, texts: Sequence[str]) -> list[Embedded]: ...
    async def embed_images(self, images: Sequence[bytes]) -> list[Embedded]: ...


PDF_OPTIONS = ExtractOptions(include_blocks=True, include_images=True, ocr=True)
"""Blocks give chunks their boxes; images become rows; OCR as the PDF service does it."""


async def _waiting_out_overload(call: Callable[[], Awaitable[T]]) -> T:
    """`call()`, again after the delay the engine asked for while it is overloaded."""
    for attempt in range(OVERLOAD_ATTEMPTS):
        try:
            return await call()
        except SensoriumError as error:
            if error.reason not in _WAIT_OUT or attempt == OVERLOAD_ATTEMPTS - 1:
                raise
            delay = error.retry_after_seconds or 0.5 * 2**attempt
            log.debug("engine busy, waiting", extra={"reason": error.reason.name, "seconds": delay})
            await asyncio.sleep(min(delay, 30.0))
    raise AssertionError("unreachable")


class InProcessEngines:
    """The engines as runtimes of this process. The embedding model starts with `start()`; the
    PDF workers and Whisper start when the first file of their kind arrives, so a folder of
    photos never loads Whisper."""

    def __init__(self, runtimes: Runtimes) -> None:
        self.runtimes = runtimes
        self._started: dict[str, asyncio.Task[None]] = {}
        queue = runtimes.settings.embedding.queue_size
        # The runtime refuses more items in work than its queue holds: stay inside it.
        self._embed_calls = asyncio.Semaphore(max(1, queue // EMBED_BATCH))

    async def start(self) -> None:
        await self._start("embedding")

    async def _start(self, name: Any) -> None:
        task = self._started.get(name)
        if task is None:
            task = self._started[name] = asyncio.ensure_future(self.runtimes.start(name))
        await asyncio.shield(task)

    async def close(self) -> None:
        await self.runtimes.close(grace=self.runtimes.settings.shutdown_grace_seconds)

    async def describe(self) -> ModelFacts:
        runtime = self.runtimes.embedding
        space = runtime.space
        return ModelFacts(
            EmbeddingSpace(space.model, space.pretrained, space.weights_sha256, space.dimension),
            runtime.context_length,
        )

    def count_tokens(self, text: str) -> int:
        return self.runtimes.embedding.count_tokens(text)

    async def extract_pdf(self, path: Path) -> AsyncIterator[list[PdfItem]]:
        await self._start("pdf")
        results = self.runtimes.pdf.extract(path, PDF_OPTIONS)
        async with contextlib.aclosing(results):
            async for result in results:
                if isinstance(result, list):
                    yield result

    async def transcribe(self, path: Path) -> Transcript:
        from sensorium.transcription.transcriber import Info, RequestedOptions

        await self._start("transcription")
        runtime = self.runtimes.transcription
        options = runtime.resolve_options(RequestedOptions())
        decoded = await _waiting_out_overload(lambda: runtime.decode(path))
        segments, model, language = [], "", ""
        pieces = runtime.transcribe(decoded, options)
        async with contextlib.aclosing(pieces):
            async for piece in pieces:
                if isinstance(piece, Info):
                    model, language = piece.model, piece.language
                else:
                    segments.append(TimedText(piece.start, piece.end, piece.text))
        return Transcript(segments, model, language)

    async def embed_texts(self, texts: Sequence[str]) -> list[Embedded]:
        runtime = self.runtimes.embedding
        async with self._embed_calls:
            outcomes = await _waiting_out_overload(lambda: runtime.embed_texts(texts))
        return [o.error if o.error is not None else _vector(o.vector) for o in outcomes]

    async def embed_images(self, images: Sequence[bytes]) -> list[Embedded]:
        runtime = self.runtimes.embedding
        async with self._embed_calls:
            outcomes = await _waiting_out_overload(lambda: runtime.embed_images(images))
        return [o.error if o.error is not None else _vector(o.vector) for o in outcomes]


def _vector(values: Any) -> Vector:
    return np.asarray(values, dtype=np.float32)


class RemoteEngines:
    """The engines of a running deployment, over gRPC. Token counting happens here, with the
    tokenizer of the model the settings name (no weights needed); `describe()` checks the
    server's model is that one."""

    def __init__(self, client: Client, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self._counter: Any = None
        self._embed_calls = asyncio.Semaphore(4)  # a few calls in flight keep the server's batches full

    async def start(self) -> None:
        await self.describe()

    async def close(self) -> None:
        await self.client.__aexit__(None, None, None)

    async def _call(self, call: Callable[[], Awaitable[T]]) -> T:
        from sensorium.client import ClientError

        async def converted() -> T:
            try:
                return await call()
            except ClientError as exc:
                raise _domain_error(exc, self.client.target) from None

        return await _waiting_out_overload(converted)

    async def describe(self) -> ModelFacts:
        from sensorium.embedding.embedder import TokenCounter

        response = await self._call(self.client.embedding_space)
        space = response.space
        facts = ModelFacts(
            EmbeddingSpace(space.model, space.pretrained, space.weights_sha256, space.dimension),
            response.context_length,
        )
        if self._counter is None:
            embedding = self.settings.embedding
            try:
                counter = await asyncio.to_thread(
                    TokenCounter.load, embedding.model, embedding.pretrained, self.settings.model_dir
                )
            except Exception as exc:
                raise SensoriumError(
                    Reason.NOT_READY,
                    f"cannot count tokens for {embedding.model} here ({exc}); the job needs the "
                    "tokenizer of the server's model: set SENSORIUM_EMBEDDING__MODEL as the server "
                    "has it and install the embedding extra",
                ) from None
            if counter.context_length != facts.context_length:
                raise SensoriumError(
                    Reason.INVALID_REQUEST,
                    f"the server's model reads {facts.context_length} tokens but "
                    f"SENSORIUM_EMBEDDING__MODEL={embedding.model} here reads "
                    f"{counter.context_length}: set it as the server has it",
                )
            self._counter = counter
        return facts

    def count_tokens(self, text: str) -> int:
        count: int = self._counter.count(text)
        return count

    async def extract_pdf(self, path: Path) -> AsyncIterator[list[PdfItem]]:
        from sensorium.client import ClientError
        from sensorium.pdf.v1 import pdf_service_pb2 as pdf_pb

        options = pdf_pb.ExtractOptions(include_blocks=True, include_images=True,
                                        max_pages_per_message=32)
        messages = self.client.stream_extract_document(path, options)
        try:
            async for message in messages:
                kind = message.WhichOneof("result")
                if kind == "pages":
                    yield [_page(p) for p in message.pages.pages]
                elif kind == "page":
                    yield [_page(message.page)]
                elif kind == "image":
                    yield [_image(message.image)]
        except ClientError as exc:
            raise _domain_error(exc, self.client.target) from None
        finally:
            with contextlib.suppress(Exception):
                await messages.aclose()  # type: ignore[attr-defined]

    async def transcribe(self, path: Path) -> Transcript:
        from sensorium.client import ClientError

        segments, model, language = [], "", ""
        try:
            async for message in self.client.stream_transcribe(path):
                kind = message.WhichOneof("result")
                if kind == "info":
                    model, language = message.info.model, message.info.language
                elif kind == "segment":
                    time_range = message.segment.time
                    segments.append(TimedText(time_range.start_seconds, time_range.end_seconds,
                                              message.segment.text))
        except ClientError as exc:
            raise _domain_error(exc, self.client.target) from None
        return Transcript(segments, model, language)

    async def embed_texts(self, texts: Sequence[str]) -> list[Embedded]:
        async with self._embed_calls:
            response = await self._call(lambda: self.client.embed_texts(texts))
        return [_remote_outcome(r) for r in response.results]

    async def embed_images(self, images: Sequence[bytes]) -> list[Embedded]:
        from sensorium.client import ClientError
        from sensorium.embedding.v1 import embedding_service_pb2 as embedding_pb

        # One image per message: a batch of photos would pass gRPC's message limit.
        requests = [embedding_pb.StreamEmbedRequest(id=str(i), image=data) for i, data in enumerate(images)]
        results: dict[int, Embedded] = {}

        async def stream() -> None:
            try:
                async for answer in self.client.stream_embed(requests):
                    results[int(answer.id)] = _remote_outcome(answer)
            except ClientError as exc:
                raise _domain_error(exc, self.client.target) from None

        async with self._embed_calls:
            await _waiting_out_overload(stream)
        return [results[i] for i in range(len(images))]


def _page(page: Any) -> PageResult:
    return PageResult(
        page_number=page.page_number,
        text=page.text,
        blocks=[Block(_bbox(b.bbox), b.text) for b in page.blocks],
        has_text_layer=page.has_text_layer,
        width=page.width,
        height=page.height,
        error=_item_error(page.error) if page.HasField("error") else None,
        image_count=page.image_count,
    )


def _image(image: Any) -> ImageResult:
    return ImageResult(
        page_number=image.page_number,
        index=image.index,
        bbox=_bbox(image.bbox) if image.HasField("bbox") else None,
        format=image.format,
        data=image.data,
        width=image.width,
        height=image.height,
        error=_item_error(image.error) if image.HasField("error") else None,
    )


def _bbox(box: Any) -> BBox:
    return BBox(box.x0, box.y0, box.x1, box.y1)


def _item_error(error: Any) -> SensoriumError:
    from sensorium.type.v1 import errors_pb2

    name = errors_pb2.ErrorReason.Name(error.reason).removeprefix("ERROR_REASON_")
    reason = Reason[name] if name in Reason.__members__ else Reason.INTERNAL_ERROR
    return SensoriumError(reason, error.message, dict(error.metadata))


def _remote_outcome(result: Any) -> Embedded:
    if result.HasField("error"):
        return _item_error(result.error)
    return np.asarray(result.vector.values, dtype=np.float32)


def _domain_error(exc: ClientError, target: str) -> Exception:
    """A failed call as the job sees it: a file's error with its reason, a retryable error for
    a missed deadline, or `EnginesUnavailable` when there is no server to talk to."""
    import grpc

    details = exc.details
    if details.reason in ("UNAUTHENTICATED", "PERMISSION_DENIED", "NOT_HOSTED"):
        return EnginesUnavailable(f"the server at {target} cannot be used: {details}")
    if details.reason in Reason.__members__:
        return SensoriumError(Reason[details.reason], details.message, details.metadata,
                              retry_after_seconds=details.retry_after_seconds)
    if details.code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return SensoriumError(Reason.OVERLOADED,
                              f"the server at {target} did not answer within the deadline")
    if details.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAUTHENTICATED,
                        grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNIMPLEMENTED):
        return EnginesUnavailable(f"the server at {target} cannot be used: {details}")
    return SensoriumError(Reason.INTERNAL_ERROR, f"the server at {target} answered {details}")

