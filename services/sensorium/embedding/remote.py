"""The embedding service over gRPC: its calls as they are on the wire (`EmbeddingClient`), and
the `EmbeddingEngine` of the one seam over them (`RemoteEmbedding`), in the domain types.

Tokens are counted here, with the tokenizer of the model the settings name (no weights are
needed), and `describe()` checks that the server's model reads as many tokens: the index job
cuts text into chunks that must fit the server's model.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncGenerator, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sensorium.embedding import wire
from sensorium.embedding.api import EmbeddingEngine, ImageOutcome, Scores, SpaceInfo, TextOutcome
from sensorium.embedding.v1 import embedding_service_pb2 as pb
from sensorium.errors import Reason, SensoriumError
from sensorium.remote import remote_errors

if TYPE_CHECKING:
    from sensorium.client import Client
    from sensorium.settings import Settings

INLINE_LIMIT = 4 * 1024 * 1024
"""Images of up to this many bytes in all go in one EmbedImages call (the request size most
gRPC servers accept); more go through StreamEmbed, one image per message."""


SERVICE = "/sensorium.embedding.v1.EmbeddingService/"


class EmbeddingClient:
    """The embedding service's calls, protobuf in and out, on `client`'s channel."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def embed_texts(
        self, texts: Sequence[str], options: pb.EmbedOptions | None = None
    ) -> pb.EmbedTextsResponse:
        request = pb.EmbedTextsRequest(texts=texts, options=options)
        return await self.client.call(SERVICE + "EmbedTexts", request, pb.EmbedTextsResponse)

    async def embed_images(
        self, images: Sequence[bytes], options: pb.EmbedOptions | None = None
    ) -> pb.EmbedImagesResponse:
        request = pb.EmbedImagesRequest(images=images, options=options)
        return await self.client.call(SERVICE + "EmbedImages", request, pb.EmbedImagesResponse)

    def stream_embed(
        self, requests: Iterable[pb.StreamEmbedRequest]
    ) -> AsyncGenerator[pb.StreamEmbedResponse, None]:
        """One message per item, so no message holds more than one image; answers may come
        out of order and carry the item's `id`. `requests` is consumed lazily."""
        return self.client.stream(SERVICE + "StreamEmbed", iter(requests), pb.StreamEmbedResponse)

    async def score(self, images: Sequence[bytes], texts: Sequence[str]) -> pb.ScoreResponse:
        request = pb.ScoreRequest(images=images, texts=texts)
        return await self.client.call(SERVICE + "Score", request, pb.ScoreResponse)

    async def embedding_space(self) -> pb.GetEmbeddingSpaceResponse:
        return await self.client.call(SERVICE + "GetEmbeddingSpace", pb.GetEmbeddingSpaceRequest(),
                                      pb.GetEmbeddingSpaceResponse)


class RemoteEmbedding:
    """The embedding service of the server `client` talks to (deadlines: the client's `timeout`)."""

    def __init__(self, client: Client, settings: Settings) -> None:
        self.client = client
        self.calls = EmbeddingClient(client)
        self.settings = settings
        self._counter: Any = None
        self._context_length: int | None = None
        self._loading = threading.Lock()

    async def describe(self) -> SpaceInfo:
        async with remote_errors(self.client.target):
            info = wire.space_info_from_message(await self.calls.embedding_space())
        self._context_length = info.context_length
        return info

    def count_tokens(self, text: str) -> int:
        count: int = self._tokenizer().count(text)
        return count

    def _tokenizer(self) -> Any:
        """The tokenizer of the model the settings name, loaded on first use (blocking, like
        every `count_tokens` call), checked to read what the server's model reads once
        `describe()` has told what that is."""
        with self._loading:
            if self._counter is None:
                from sensorium.embedding.embedder import TokenCounter

                embedding = self.settings.embedding
                try:
                    self._counter = TokenCounter.load(embedding.model, embedding.pretrained,
                                                      self.settings.model_dir)
                except Exception as exc:
                    raise SensoriumError(
                        Reason.NOT_READY,
                        f"cannot count tokens for {embedding.model} here ({exc}); the job needs the "
                        "tokenizer of the server's model: set SENSORIUM_EMBEDDING__MODEL as the "
                        "server has it and install the embedding extra",
                    ) from None
            expected = self._context_length
            if expected is not None and self._counter.context_length != expected:
                raise SensoriumError(
                    Reason.INVALID_REQUEST,
                    f"the server's model reads {expected} tokens but SENSORIUM_EMBEDDING__MODEL="
                    f"{self.settings.embedding.model} here reads {self._counter.context_length}: "
                    "set it as the server has it",
                )
            return self._counter

    async def embed_texts(
        self, texts: Sequence[str], *, strict: bool | None = None, normalize: bool = True,
        deadline: float | None = None,
    ) -> list[TextOutcome]:
        async with remote_errors(self.client.target):
            response = await self.calls.embed_texts(texts, wire.options_to_message(strict, normalize))
        return [wire.text_from_message(result) for result in response.results]

    async def embed_images(
        self, images: Sequence[bytes], *, normalize: bool = True, deadline: float | None = None
    ) -> list[ImageOutcome]:
        options = wire.options_to_message(normalize=normalize)
        async with remote_errors(self.client.target):
            if sum(len(image) for image in images) <= INLINE_LIMIT:
                response = await self.calls.embed_images(images, options)
                return [wire.image_from_message(result) for result in response.results]
            # One image per message: a batch of photos would pass gRPC's message limit.
            requests = (pb.StreamEmbedRequest(id=str(i), image=data, options=options)
                        for i, data in enumerate(images))
            answers = {answer.id: answer async for answer in self.calls.stream_embed(requests)}
        return [wire.image_from_stream_answer(answers[str(i)]) for i in range(len(images))]

    async def score(
        self, images: Sequence[bytes], texts: Sequence[str], *, deadline: float | None = None
    ) -> Scores:
        async with remote_errors(self.client.target):
            return wire.scores_from_message(await self.calls.score(images, texts))


if TYPE_CHECKING:
    _ENGINE: type[EmbeddingEngine] = RemoteEmbedding  # mypy: an EmbeddingEngine
