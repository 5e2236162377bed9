"""The transcription service over gRPC: its calls as they are on the wire
(`TranscriptionClient`), and the `TranscriptionEngine` of the one seam over them
(`RemoteTranscription`), answering in the domain types.

Files are uploaded through the stream (any size), whose segments arrive as they are made.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import TYPE_CHECKING

from sensorium.remote import remote_errors
from sensorium.transcription import wire
from sensorium.transcription.api import Piece, RequestedOptions, TranscriptionEngine
from sensorium.transcription.v1 import transcription_service_pb2 as pb

if TYPE_CHECKING:
    from sensorium.client import Client


SERVICE = "/sensorium.transcription.v1.TranscriptionService/"


class TranscriptionClient:
    """The transcription service's calls, protobuf in and out, on `client`'s channel."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def transcribe(
        self, content: bytes, options: pb.TranscriptionOptions | None = None
    ) -> pb.TranscribeResponse:
        request = pb.TranscribeRequest(content=content, options=options)
        return await self.client.call(SERVICE + "Transcribe", request, pb.TranscribeResponse)

    def stream_transcribe(
        self, path: Path, options: pb.TranscriptionOptions | None = None
    ) -> AsyncGenerator[pb.StreamTranscribeResponse, None]:
        return self.client.upload_file(
            SERVICE + "StreamTranscribe", path,
            lambda upload: pb.StreamTranscribeRequest(
                header=pb.StreamTranscribeHeader(upload=upload, options=options)),
            lambda chunk: pb.StreamTranscribeRequest(chunk=chunk), pb.StreamTranscribeResponse)


class RemoteTranscription:
    """The transcription service of the server `client` talks to (its deadline is the
    client's `timeout`)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.calls = TranscriptionClient(client)

    async def transcribe_file(
        self, path: str | os.PathLike[str], options: RequestedOptions, *,
        allow_truncated: bool = False, deadline: float | None = None,
    ) -> AsyncGenerator[Piece, None]:
        message = wire.options_to_message(options, allow_truncated=allow_truncated)
        answers = self.calls.stream_transcribe(Path(path), message)
        async with remote_errors(self.client.target), contextlib.aclosing(answers):
            async for answer in answers:
                kind = answer.WhichOneof("result")
                if kind == "info":
                    yield wire.info_from_message(answer.info)
                elif kind == "segment":
                    yield wire.segment_from_message(answer.segment)


if TYPE_CHECKING:
    _ENGINE: type[TranscriptionEngine] = RemoteTranscription  # mypy: a TranscriptionEngine
