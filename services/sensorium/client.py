"""A small asyncio client for every Sensorium service.

    async with Client("localhost:50051") as client:
        response = await client.extract_document(Path("paper.pdf").read_bytes())

Failed calls raise `ClientError`, whose `details` hold the status code, the Sensorium reason
(e.g. "PDF_PASSWORD_REQUIRED"), the message and any retry delay.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sensorium.embedding.v1 import embedding_service_pb2 as embedding_pb
from sensorium.embedding.v1 import embedding_service_pb2_grpc as embedding_grpc
from sensorium.errors import ErrorDetails, details_from_rpc_error
from sensorium.pdf.v1 import pdf_service_pb2 as pdf_pb
from sensorium.pdf.v1 import pdf_service_pb2_grpc as pdf_grpc
from sensorium.transcription.v1 import transcription_service_pb2 as transcription_pb
from sensorium.transcription.v1 import transcription_service_pb2_grpc as transcription_grpc
from sensorium.type.v1 import upload_pb2

CHUNK_BYTES = 1024 * 1024
# Streams carry images and many pages; allow large messages in, whatever the gRPC default.
MAX_RECEIVE_BYTES = 64 * 1024 * 1024
T = TypeVar("T")


class ClientError(Exception):
    """A failed call; `details` decodes its rich status."""

    def __init__(self, details: ErrorDetails) -> None:
        super().__init__(str(details))
        self.details = details


class Client:
    """Channel and stubs for one server; use as an async context manager."""

    def __init__(self, target: str, *, timeout: float | None = None) -> None:
        self.target = target
        self.timeout = timeout
        self.channel = grpc.aio.insecure_channel(
            target,
            options=[
                ("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
                ("grpc.max_send_message_length", MAX_RECEIVE_BYTES),
            ],
        )
        self.pdf = pdf_grpc.PdfServiceStub(self.channel)
        self.transcription = transcription_grpc.TranscriptionServiceStub(self.channel)
        self.embedding = embedding_grpc.EmbeddingServiceStub(self.channel)
        self._health = health_pb2_grpc.HealthStub(self.channel)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.channel.close()

    async def _unary(self, call: Callable[..., Awaitable[T]], request: Any) -> T:
        try:
            return await call(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            raise ClientError(details_from_rpc_error(exc)) from None

    async def _stream(self, call: Callable[..., Any], requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
        rpc = call(requests, timeout=self.timeout)
        try:
            async for response in rpc:
                yield response
        except grpc.RpcError as exc:
            raise ClientError(details_from_rpc_error(exc)) from None
        finally:
            # A caller that stops early cancels the call, so the server stops working on it.
            rpc.cancel()

    # Health

    async def health(self, service: str = "") -> str:
        """The health status name ("SERVING", "NOT_SERVING", ...) of `service` ("" = overall)."""
        request = health_pb2.HealthCheckRequest(service=service)
        response = await self._unary(self._health.Check, request)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))

    # PDF

    async def extract_document(
        self, content: bytes, options: pdf_pb.ExtractOptions | None = None
    ) -> pdf_pb.ExtractDocumentResponse:
        request = pdf_pb.ExtractDocumentRequest(content=content, options=options)
        return await self._unary(self.pdf.ExtractDocument, request)

    def stream_extract_document(
        self, path: Path, options: pdf_pb.ExtractOptions | None = None
    ) -> AsyncIterator[pdf_pb.StreamExtractDocumentResponse]:
        header = pdf_pb.StreamExtractDocumentHeader(upload=_upload(path, "application/pdf"),
                                                    options=options)
        requests = _chunked(path, pdf_pb.StreamExtractDocumentRequest(header=header),
                            lambda chunk: pdf_pb.StreamExtractDocumentRequest(chunk=chunk))
        return self._stream(self.pdf.StreamExtractDocument, requests)

    # Transcription

    async def transcribe(
        self, content: bytes, options: transcription_pb.TranscriptionOptions | None = None
    ) -> transcription_pb.TranscribeResponse:
        request = transcription_pb.TranscribeRequest(content=content, options=options)
        return await self._unary(self.transcription.Transcribe, request)

    def stream_transcribe(
        self, path: Path, options: transcription_pb.TranscriptionOptions | None = None
    ) -> AsyncIterator[transcription_pb.StreamTranscribeResponse]:
        header = transcription_pb.StreamTranscribeHeader(upload=_upload(path, ""), options=options)
        requests = _chunked(path, transcription_pb.StreamTranscribeRequest(header=header),
                            lambda chunk: transcription_pb.StreamTranscribeRequest(chunk=chunk))
        return self._stream(self.transcription.StreamTranscribe, requests)

    # Embedding

    async def embed_texts(
        self, texts: Sequence[str], options: embedding_pb.EmbedOptions | None = None
    ) -> embedding_pb.EmbedTextsResponse:
        request = embedding_pb.EmbedTextsRequest(texts=texts, options=options)
        return await self._unary(self.embedding.EmbedTexts, request)

    async def embed_images(
        self, images: Sequence[bytes], options: embedding_pb.EmbedOptions | None = None
    ) -> embedding_pb.EmbedImagesResponse:
        request = embedding_pb.EmbedImagesRequest(images=images, options=options)
        return await self._unary(self.embedding.EmbedImages, request)

    async def score(self, images: Sequence[bytes], texts: Sequence[str]) -> embedding_pb.ScoreResponse:
        request = embedding_pb.ScoreRequest(images=images, texts=texts)
        return await self._unary(self.embedding.Score, request)

    async def embedding_space(self) -> embedding_pb.GetEmbeddingSpaceResponse:
        request = embedding_pb.GetEmbeddingSpaceRequest()
        return await self._unary(self.embedding.GetEmbeddingSpace, request)


def _upload(path: Path, media_type: str) -> upload_pb2.UploadHeader:
    return upload_pb2.UploadHeader(
        filename=path.name, media_type=media_type, size_bytes=path.stat().st_size
    )


async def _chunked(path: Path, header: Any, wrap: Callable[[bytes], Any]) -> AsyncIterator[Any]:
    yield header
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            yield wrap(chunk)
