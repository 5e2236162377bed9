import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from sensorium.type.v1 import geometry_pb2 as _geometry_pb2
from sensorium.type.v1 import upload_pb2 as _upload_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TextMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TEXT_MODE_UNSPECIFIED: _ClassVar[TextMode]
    TEXT_MODE_AUTO: _ClassVar[TextMode]
    TEXT_MODE_NEVER: _ClassVar[TextMode]

class TextStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TEXT_STATUS_UNSPECIFIED: _ClassVar[TextStatus]
    TEXT_STATUS_READ: _ClassVar[TextStatus]
    TEXT_STATUS_NO_TEXT: _ClassVar[TextStatus]
    TEXT_STATUS_SKIPPED: _ClassVar[TextStatus]
    TEXT_STATUS_DISABLED: _ClassVar[TextStatus]
TEXT_MODE_UNSPECIFIED: TextMode
TEXT_MODE_AUTO: TextMode
TEXT_MODE_NEVER: TextMode
TEXT_STATUS_UNSPECIFIED: TextStatus
TEXT_STATUS_READ: TextStatus
TEXT_STATUS_NO_TEXT: TextStatus
TEXT_STATUS_SKIPPED: TextStatus
TEXT_STATUS_DISABLED: TextStatus

class ImageTextOptions(_message.Message):
    __slots__ = ("text_mode", "preview_side")
    TEXT_MODE_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_SIDE_FIELD_NUMBER: _ClassVar[int]
    text_mode: TextMode
    preview_side: int
    def __init__(self, text_mode: _Optional[_Union[TextMode, str]] = ..., preview_side: _Optional[int] = ...) -> None: ...

class ReadImageTextRequest(_message.Message):
    __slots__ = ("content", "options")
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    content: bytes
    options: ImageTextOptions
    def __init__(self, content: _Optional[bytes] = ..., options: _Optional[_Union[ImageTextOptions, _Mapping]] = ...) -> None: ...

class ReadImageTextResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: ImageText
    def __init__(self, result: _Optional[_Union[ImageText, _Mapping]] = ...) -> None: ...

class StreamReadImageTextRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: StreamReadImageTextHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[StreamReadImageTextHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class StreamReadImageTextHeader(_message.Message):
    __slots__ = ("upload", "options")
    UPLOAD_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    upload: _upload_pb2.UploadHeader
    options: ImageTextOptions
    def __init__(self, upload: _Optional[_Union[_upload_pb2.UploadHeader, _Mapping]] = ..., options: _Optional[_Union[ImageTextOptions, _Mapping]] = ...) -> None: ...

class StreamReadImageTextResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: ImageText
    def __init__(self, result: _Optional[_Union[ImageText, _Mapping]] = ...) -> None: ...

class ImageText(_message.Message):
    __slots__ = ("lines", "status", "width", "height", "format", "photo", "camera", "taken_at", "check_seconds", "read_seconds", "preview")
    LINES_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    PHOTO_FIELD_NUMBER: _ClassVar[int]
    CAMERA_FIELD_NUMBER: _ClassVar[int]
    TAKEN_AT_FIELD_NUMBER: _ClassVar[int]
    CHECK_SECONDS_FIELD_NUMBER: _ClassVar[int]
    READ_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_FIELD_NUMBER: _ClassVar[int]
    lines: _containers.RepeatedCompositeFieldContainer[TextLine]
    status: TextStatus
    width: int
    height: int
    format: str
    photo: bool
    camera: str
    taken_at: CaptureTime
    check_seconds: float
    read_seconds: float
    preview: bytes
    def __init__(self, lines: _Optional[_Iterable[_Union[TextLine, _Mapping]]] = ..., status: _Optional[_Union[TextStatus, str]] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., format: _Optional[str] = ..., photo: _Optional[bool] = ..., camera: _Optional[str] = ..., taken_at: _Optional[_Union[CaptureTime, _Mapping]] = ..., check_seconds: _Optional[float] = ..., read_seconds: _Optional[float] = ..., preview: _Optional[bytes] = ...) -> None: ...

class TextLine(_message.Message):
    __slots__ = ("text", "bbox", "confidence")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    BBOX_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    text: str
    bbox: _geometry_pb2.BoundingBox
    confidence: float
    def __init__(self, text: _Optional[str] = ..., bbox: _Optional[_Union[_geometry_pb2.BoundingBox, _Mapping]] = ..., confidence: _Optional[float] = ...) -> None: ...

class CaptureTime(_message.Message):
    __slots__ = ("time", "zone_known", "utc_offset_minutes")
    TIME_FIELD_NUMBER: _ClassVar[int]
    ZONE_KNOWN_FIELD_NUMBER: _ClassVar[int]
    UTC_OFFSET_MINUTES_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    zone_known: bool
    utc_offset_minutes: int
    def __init__(self, time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., zone_known: _Optional[bool] = ..., utc_offset_minutes: _Optional[int] = ...) -> None: ...

class VideoOptions(_message.Message):
    __slots__ = ("max_frames",)
    MAX_FRAMES_FIELD_NUMBER: _ClassVar[int]
    max_frames: int
    def __init__(self, max_frames: _Optional[int] = ...) -> None: ...

class StreamExtractVideoFramesRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: StreamExtractVideoFramesHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[StreamExtractVideoFramesHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class StreamExtractVideoFramesHeader(_message.Message):
    __slots__ = ("upload", "options")
    UPLOAD_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    upload: _upload_pb2.UploadHeader
    options: VideoOptions
    def __init__(self, upload: _Optional[_Union[_upload_pb2.UploadHeader, _Mapping]] = ..., options: _Optional[_Union[VideoOptions, _Mapping]] = ...) -> None: ...

class StreamExtractVideoFramesResponse(_message.Message):
    __slots__ = ("frame", "summary")
    FRAME_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    frame: VideoFrame
    summary: VideoSummary
    def __init__(self, frame: _Optional[_Union[VideoFrame, _Mapping]] = ..., summary: _Optional[_Union[VideoSummary, _Mapping]] = ...) -> None: ...

class VideoFrame(_message.Message):
    __slots__ = ("seconds", "jpeg", "width", "height", "scene_change", "score")
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    JPEG_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    SCENE_CHANGE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    seconds: float
    jpeg: bytes
    width: int
    height: int
    scene_change: bool
    score: float
    def __init__(self, seconds: _Optional[float] = ..., jpeg: _Optional[bytes] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., scene_change: _Optional[bool] = ..., score: _Optional[float] = ...) -> None: ...

class VideoSummary(_message.Message):
    __slots__ = ("decoded_seconds", "declared_seconds", "width", "height", "container", "codec", "skipped_packets", "candidates", "keyframes_only_after_seconds", "taken_at")
    DECODED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DECLARED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_PACKETS_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    KEYFRAMES_ONLY_AFTER_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TAKEN_AT_FIELD_NUMBER: _ClassVar[int]
    decoded_seconds: float
    declared_seconds: float
    width: int
    height: int
    container: str
    codec: str
    skipped_packets: int
    candidates: int
    keyframes_only_after_seconds: float
    taken_at: CaptureTime
    def __init__(self, decoded_seconds: _Optional[float] = ..., declared_seconds: _Optional[float] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., container: _Optional[str] = ..., codec: _Optional[str] = ..., skipped_packets: _Optional[int] = ..., candidates: _Optional[int] = ..., keyframes_only_after_seconds: _Optional[float] = ..., taken_at: _Optional[_Union[CaptureTime, _Mapping]] = ...) -> None: ...
