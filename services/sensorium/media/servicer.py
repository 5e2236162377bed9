"""The media service's gRPC face: uploads spooled, the `MediaRuntime` behind, `media.wire`
between.

An image's answer is one message (text lines and metadata are small; a preview is capped at
1024 pixels), inline or after a streamed upload. A video's frames are streamed one per message
(each a JPEG of at most `media.frame_max_side` pixels), then a summary: all of them together
could pass most clients' 4 MiB receive limit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from sensorium.media import wire
from sensorium.media.runtime import MediaRuntime
from sensorium.media.v1 import media_service_pb2 as pb
from sensorium.media.v1 import media_service_pb2_grpc as pb_grpc
from sensorium.rpc import ensure_unary_fits
from sensorium.uploads import split_stream, spool_bytes, spool_chunks

_IMAGE_SETTING = "media.max_image_bytes"
_VIDEO_SETTING = "media.max_video_bytes"

Context = grpc.aio.ServicerContext[object, object]


def add_to_server(server: grpc.aio.Server, runtime: MediaRuntime) -> None:
    pb_grpc.add_MediaServiceServicer_to_server(_Servicer(runtime), server)


class _Servicer(pb_grpc.MediaServiceServicer):
    def __init__(self, runtime: MediaRuntime) -> None:
        self.runtime = runtime

    async def ReadImageText(
        self, request: pb.ReadImageTextRequest, context: Context
    ) -> pb.ReadImageTextResponse:
        async with spool_bytes(
            request.content, budget=self.runtime.budget, limit=self.runtime.settings.max_image_bytes,
            what="image", setting=_IMAGE_SETTING,
        ) as upload:
            found = await self.runtime.read_image_text(
                upload.path, wire.image_options_from_message(request.options))
        response = pb.ReadImageTextResponse(result=wire.image_text_to_message(found))
        ensure_unary_fits(response, "image's text", "StreamReadImageText, or a smaller preview_side")
        return response

    async def StreamReadImageText(
        self, requests: AsyncIterator[pb.StreamReadImageTextRequest], context: Context
    ) -> AsyncIterator[pb.StreamReadImageTextResponse]:
        header, chunks = await split_stream(requests)
        async with spool_chunks(
            chunks, declared_size=header.upload.size_bytes, filename=header.upload.filename,
            budget=self.runtime.budget, limit=self.runtime.settings.max_image_bytes,
            what="image", setting=_IMAGE_SETTING,
        ) as upload:
            found = await self.runtime.read_image_text(
                upload.path, wire.image_options_from_message(header.options))
        yield pb.StreamReadImageTextResponse(result=wire.image_text_to_message(found))

    async def StreamExtractVideoFrames(
        self, requests: AsyncIterator[pb.StreamExtractVideoFramesRequest], context: Context
    ) -> AsyncIterator[pb.StreamExtractVideoFramesResponse]:
        header, chunks = await split_stream(requests)
        async with spool_chunks(
            chunks, declared_size=header.upload.size_bytes, filename=header.upload.filename,
            budget=self.runtime.budget, limit=self.runtime.settings.max_video_bytes,
            what="video", setting=_VIDEO_SETTING,
        ) as upload:
            video = await self.runtime.extract_frames(
                upload.path, wire.video_options_from_message(header.options))
        for message in wire.video_to_messages(video):
            yield message
