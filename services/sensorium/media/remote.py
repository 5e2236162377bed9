"""The media service over gRPC: its calls as they are on the wire (`MediaClient`), and the
`MediaEngine` of the one seam over them (`RemoteMedia`), answering in the domain types.

Small images go inline (the unary call); larger ones through the streamed upload. Videos are
always streamed, and their frames come back one per message.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import TYPE_CHECKING

from sensorium.errors import Reason
from sensorium.media import wire
from sensorium.media.api import ImageText, ImageTextOptions, MediaEngine, VideoFrames, VideoOptions
from sensorium.media.v1 import media_service_pb2 as pb
from sensorium.remote import RemoteError, remote_errors

if TYPE_CHECKING:
    from sensorium.client import Client

INLINE_LIMIT = 4 * 1024 * 1024
"""Images up to this size go inline (unary): the request size most gRPC servers accept."""
SERVICE = "/sensorium.media.v1.MediaService/"


class MediaClient:
    """The media service's calls, protobuf in and out, on `client`'s channel."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def read_image_text(
        self, content: bytes, options: pb.ImageTextOptions | None = None
    ) -> pb.ReadImageTextResponse:
        request = pb.ReadImageTextRequest(content=content, options=options)
        return await self.client.call(SERVICE + "ReadImageText", request, pb.ReadImageTextResponse)

    def stream_read_image_text(
        self, path: Path, options: pb.ImageTextOptions | None = None
    ) -> AsyncGenerator[pb.StreamReadImageTextResponse, None]:
        return self.client.upload_file(
            SERVICE + "StreamReadImageText", path,
            lambda upload: pb.StreamReadImageTextRequest(
                header=pb.StreamReadImageTextHeader(upload=upload, options=options)),
            lambda chunk: pb.StreamReadImageTextRequest(chunk=chunk),
            pb.StreamReadImageTextResponse)

    def stream_extract_video_frames(
        self, path: Path, options: pb.VideoOptions | None = None
    ) -> AsyncGenerator[pb.StreamExtractVideoFramesResponse, None]:
        return self.client.upload_file(
            SERVICE + "StreamExtractVideoFrames", path,
            lambda upload: pb.StreamExtractVideoFramesRequest(
                header=pb.StreamExtractVideoFramesHeader(upload=upload, options=options)),
            lambda chunk: pb.StreamExtractVideoFramesRequest(chunk=chunk),
            pb.StreamExtractVideoFramesResponse)


class RemoteMedia:
    """The media service of the server `client` talks to, as a `MediaEngine`."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.calls = MediaClient(client)

    async def read_image_text(
        self, path: str | os.PathLike[str], options: ImageTextOptions
    ) -> ImageText:
        path = Path(path)
        message = wire.image_options_to_message(options)
        async with remote_errors(self.client.target):
            if path.stat().st_size <= INLINE_LIMIT:
                response = await self.calls.read_image_text(path.read_bytes(), message)
                return wire.image_text_from_message(response.result)
            answers = self.calls.stream_read_image_text(path, message)
            async with contextlib.aclosing(answers):
                async for answer in answers:
                    return wire.image_text_from_message(answer.result)
        raise _no_answer(self.client.target, "the image's text")

    async def extract_frames(
        self, path: str | os.PathLike[str], options: VideoOptions
    ) -> VideoFrames:
        messages = []
        async with remote_errors(self.client.target):
            stream = self.calls.stream_extract_video_frames(
                Path(path), wire.video_options_to_message(options))
            async with contextlib.aclosing(stream):  # leaving early cancels the call
                async for message in stream:
                    messages.append(message)
        try:
            return wire.video_from_messages(messages)
        except ValueError:
            raise _no_answer(self.client.target, "the video's summary") from None


def _no_answer(target: str, what: str) -> RemoteError:
    return RemoteError(Reason.INTERNAL_ERROR, f"the server at {target} ended the call without {what}")


if TYPE_CHECKING:
    _ENGINE: type[MediaEngine] = RemoteMedia  # mypy: RemoteMedia is a MediaEngine
