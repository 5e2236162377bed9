"""The CLI's in-process mode: the `Client` calls, answered by runtimes in this process.

`LocalClient` has the methods of `sensorium.client.Client` that the CLI uses and returns the
same protobuf responses, made by the same functions the servicers use, so a command prints the
same whether it talks to a server or runs the engine itself; there is no loopback server.
Failures raise `ClientError` with the status a server would have sent, and a message that says
how to change a limit here (an environment variable) rather than asking an operator.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, Iterator, Sequence
from pathlib import Path

from sensorium.client import ClientError, ErrorDetails
from sensorium.embedding import servicer as embedding
from sensorium.embedding.v1 import embedding_service_pb2 as embedding_pb
from sensorium.errors import SensoriumError, explain, setting_variable
from sensorium.pdf import servicer as pdf
from sensorium.pdf.v1 import pdf_service_pb2 as pdf_pb
from sensorium.runtimes import Runtimes
from sensorium.status import code_of
from sensorium.transcription import servicer as transcription
from sensorium.transcription.v1 import transcription_service_pb2 as transcription_pb


def error_details(error: SensoriumError) -> ErrorDetails:
    """What a local caller learns from a domain error: a server's status, a local hint."""
    metadata = dict(error.metadata)
    if error.setting:
        metadata["setting"] = setting_variable(error.setting)
    return ErrorDetails(code_of(error), explain(error, "operator"), error.reason.name, metadata,
                        error.retry_after_seconds)


@contextlib.contextmanager
def _client_errors() -> Iterator[None]:
    try:
        yield
    except SensoriumError as error:
        raise ClientError(error_details(error)) from None


class LocalClient:
    """`Client`'s calls over the runtimes of this process (see the module docstring)."""

    def __init__(self, runtimes: Runtimes, *, timeout: float | None = None) -> None:
        self.runtimes = runtimes
        self.timeout = timeout

    def _deadline(self) -> float | None:
        return None if self.timeout is None else time.monotonic() + self.timeout

    # PDF

    async def stream_extract_document(
        self, path: Path, options: pdf_pb.ExtractOptions | None = None
    ) -> AsyncGenerator[pdf_pb.StreamExtractDocumentResponse, None]:
        with _client_errors():
            messages = pdf.stream_document(self.runtimes.pdf, str(path), options or pdf_pb.ExtractOptions())
            async with contextlib.aclosing(messages):
                async for message in messages:
                    yield message

    # Transcription

    async def stream_transcribe(
        self, path: Path, options: transcription_pb.TranscriptionOptions | None = None
    ) -> AsyncGenerator[transcription_pb.StreamTranscribeResponse, None]:
        runtime = self.runtimes.transcription
        started = time.perf_counter()
        with _client_errors():
            decoded, resolved = await transcription.decode_request(
                runtime, path, options or transcription_pb.TranscriptionOptions())
            messages = transcription.transcript_messages(
                runtime, decoded, resolved, deadline=self._deadline(), started=started)
            async with contextlib.aclosing(messages):
                async for message in messages:
                    yield message

    # Embedding

    async def embed_texts(
        self, texts: Sequence[str], options: embedding_pb.EmbedOptions | None = None
    ) -> embedding_pb.EmbedTextsResponse:
        request = embedding_pb.EmbedTextsRequest(texts=texts, options=options)
        with _client_errors():
            return await embedding.embed_texts_response(self.runtimes.embedding, request, self._deadline())

    async def embed_images(
        self, images: Sequence[bytes], options: embedding_pb.EmbedOptions | None = None
    ) -> embedding_pb.EmbedImagesResponse:
        request = embedding_pb.EmbedImagesRequest(images=images, options=options)
        with _client_errors():
            return await embedding.embed_images_response(self.runtimes.embedding, request, self._deadline())

    async def score(self, images: Sequence[bytes], texts: Sequence[str]) -> embedding_pb.ScoreResponse:
        request = embedding_pb.ScoreRequest(images=images, texts=texts)
        with _client_errors():
            return await embedding.score_response(self.runtimes.embedding, request, self._deadline())

    async def embedding_space(self) -> embedding_pb.GetEmbeddingSpaceResponse:
        with _client_errors():
            return embedding.space_response(self.runtimes.embedding)
