"""The media service on the wire: every message of `sensorium.media.v1` to and from the domain
types of `sensorium.media.api`, in one place for the servicer (server side) and `media.remote`
(client side). tests/unit/test_wire.py holds the two directions together.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone

from sensorium.media.api import (
    Box,
    ImageText,
    ImageTextOptions,
    TextLine,
    TextStatus,
    VideoFrame,
    VideoFrames,
    VideoOptions,
)
from sensorium.media.v1 import media_service_pb2 as pb
from sensorium.type.v1 import geometry_pb2


def image_options_to_message(options: ImageTextOptions) -> pb.ImageTextOptions:
    return pb.ImageTextOptions(
        text_mode=pb.TEXT_MODE_AUTO if options.read_text else pb.TEXT_MODE_NEVER,
        preview_side=options.preview_side,
    )


def image_options_from_message(message: pb.ImageTextOptions) -> ImageTextOptions:
    return ImageTextOptions(read_text=message.text_mode != pb.TEXT_MODE_NEVER,
                            preview_side=message.preview_side)


def capture_time_to_message(when: datetime) -> pb.CaptureTime:
    """An aware time as its instant and offset; a naive one (a camera clock in an unknown zone)
    as its reading written as if it were UTC, with `zone_known` false."""
    message = pb.CaptureTime(zone_known=when.tzinfo is not None)
    offset = when.utcoffset()
    if offset is not None:
        message.utc_offset_minutes = round(offset.total_seconds() / 60)
    message.time.FromDatetime(when if when.tzinfo is not None else when.replace(tzinfo=UTC))
    return message


def capture_time_from_message(message: pb.CaptureTime) -> datetime:
    instant = message.time.ToDatetime(tzinfo=UTC)
    if not message.zone_known:
        return instant.replace(tzinfo=None)
    return instant.astimezone(timezone(timedelta(minutes=message.utc_offset_minutes)))


def _box_to_message(box: Box) -> geometry_pb2.BoundingBox:
    return geometry_pb2.BoundingBox(x0=box.x0, y0=box.y0, x1=box.x1, y1=box.y1)


def _box_from_message(message: geometry_pb2.BoundingBox) -> Box:
    return Box(round(message.x0), round(message.y0), round(message.x1), round(message.y1))


def image_text_to_message(found: ImageText) -> pb.ImageText:
    message = pb.ImageText(
        lines=[pb.TextLine(text=line.text, bbox=_box_to_message(line.box), confidence=line.confidence)
               for line in found.lines],
        status=f"TEXT_STATUS_{found.status.value}", width=found.width, height=found.height,
        format=found.format, photo=found.photo, camera=found.camera,
        check_seconds=found.check_seconds, read_seconds=found.read_seconds, preview=found.preview,
    )
    if found.taken_at is not None:
        message.taken_at.CopyFrom(capture_time_to_message(found.taken_at))
    return message


def image_text_from_message(message: pb.ImageText) -> ImageText:
    status = pb.TextStatus.Name(message.status).removeprefix("TEXT_STATUS_")
    return ImageText(
        lines=[TextLine(line.text, _box_from_message(line.bbox), round(line.confidence, 4))
               for line in message.lines],
        status=TextStatus(status) if status in TextStatus.__members__ else TextStatus.READ,
        width=message.width, height=message.height, format=message.format, photo=message.photo,
        camera=message.camera,
        taken_at=capture_time_from_message(message.taken_at) if message.HasField("taken_at") else None,
        check_seconds=message.check_seconds, read_seconds=message.read_seconds,
        preview=message.preview,
    )


def video_options_to_message(options: VideoOptions) -> pb.VideoOptions:
    return pb.VideoOptions(max_frames=options.max_frames)


def video_options_from_message(message: pb.VideoOptions) -> VideoOptions:
    return VideoOptions(max_frames=message.max_frames)


def frame_to_message(frame: VideoFrame) -> pb.VideoFrame:
    return pb.VideoFrame(seconds=frame.seconds, jpeg=frame.jpeg, width=frame.width,
                         height=frame.height, scene_change=frame.scene_change, score=frame.score)


def frame_from_message(message: pb.VideoFrame) -> VideoFrame:
    return VideoFrame(message.seconds, message.jpeg, message.width, message.height,
                      message.scene_change, round(message.score, 4))


def summary_to_message(video: VideoFrames) -> pb.VideoSummary:
    message = pb.VideoSummary(
        decoded_seconds=video.decoded_seconds, width=video.width, height=video.height,
        container=video.container, codec=video.codec, skipped_packets=video.skipped_packets,
        candidates=video.candidates,
    )
    if video.declared_seconds is not None:
        message.declared_seconds = video.declared_seconds
    if video.keyframes_only_after is not None:
        message.keyframes_only_after_seconds = video.keyframes_only_after
    if video.taken_at is not None:
        message.taken_at.CopyFrom(capture_time_to_message(video.taken_at))
    return message


def video_to_messages(video: VideoFrames) -> list[pb.StreamExtractVideoFramesResponse]:
    """The stream's responses for `video`: each frame, then the summary."""
    return [*(pb.StreamExtractVideoFramesResponse(frame=frame_to_message(frame)) for frame in video.frames),
            pb.StreamExtractVideoFramesResponse(summary=summary_to_message(video))]


def video_from_messages(messages: Iterable[pb.StreamExtractVideoFramesResponse]) -> VideoFrames:
    """The `VideoFrames` a stream's responses describe (frames, then the summary)."""
    frames: list[VideoFrame] = []
    summary: pb.VideoSummary | None = None
    for message in messages:
        kind = message.WhichOneof("result")
        if kind == "frame":
            frames.append(frame_from_message(message.frame))
        elif kind == "summary":
            summary = message.summary
    if summary is None:
        raise ValueError("the stream of video frames ended without its summary")
    return VideoFrames(
        frames=frames, decoded_seconds=summary.decoded_seconds,
        declared_seconds=summary.declared_seconds if summary.HasField("declared_seconds") else None,
        width=summary.width, height=summary.height, container=summary.container, codec=summary.codec,
        skipped_packets=summary.skipped_packets, candidates=summary.candidates,
        keyframes_only_after=(summary.keyframes_only_after_seconds
                              if summary.HasField("keyframes_only_after_seconds") else None),
        taken_at=capture_time_from_message(summary.taken_at) if summary.HasField("taken_at") else None,
    )
