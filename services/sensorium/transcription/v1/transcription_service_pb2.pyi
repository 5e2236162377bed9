from sensorium.type.v1 import geometry_pb2 as _geometry_pb2
from sensorium.type.v1 import upload_pb2 as _upload_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Task(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_UNSPECIFIED: _ClassVar[Task]
    TASK_TRANSCRIBE: _ClassVar[Task]
    TASK_TRANSLATE: _ClassVar[Task]
TASK_UNSPECIFIED: Task
TASK_TRANSCRIBE: Task
TASK_TRANSLATE: Task

class TranscriptionOptions(_message.Message):
    __slots__ = ("language", "task", "beam_size", "word_timestamps", "vad_filter", "initial_prompt", "hotwords", "temperatures", "condition_on_previous_text", "batched", "batch_size", "allow_truncated")
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    BEAM_SIZE_FIELD_NUMBER: _ClassVar[int]
    WORD_TIMESTAMPS_FIELD_NUMBER: _ClassVar[int]
    VAD_FILTER_FIELD_NUMBER: _ClassVar[int]
    INITIAL_PROMPT_FIELD_NUMBER: _ClassVar[int]
    HOTWORDS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURES_FIELD_NUMBER: _ClassVar[int]
    CONDITION_ON_PREVIOUS_TEXT_FIELD_NUMBER: _ClassVar[int]
    BATCHED_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    ALLOW_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    language: str
    task: Task
    beam_size: int
    word_timestamps: bool
    vad_filter: bool
    initial_prompt: str
    hotwords: str
    temperatures: _containers.RepeatedScalarFieldContainer[float]
    condition_on_previous_text: bool
    batched: bool
    batch_size: int
    allow_truncated: bool
    def __init__(self, language: _Optional[str] = ..., task: _Optional[_Union[Task, str]] = ..., beam_size: _Optional[int] = ..., word_timestamps: _Optional[bool] = ..., vad_filter: _Optional[bool] = ..., initial_prompt: _Optional[str] = ..., hotwords: _Optional[str] = ..., temperatures: _Optional[_Iterable[float]] = ..., condition_on_previous_text: _Optional[bool] = ..., batched: _Optional[bool] = ..., batch_size: _Optional[int] = ..., allow_truncated: _Optional[bool] = ...) -> None: ...

class TranscribeRequest(_message.Message):
    __slots__ = ("content", "options")
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    content: bytes
    options: TranscriptionOptions
    def __init__(self, content: _Optional[bytes] = ..., options: _Optional[_Union[TranscriptionOptions, _Mapping]] = ...) -> None: ...

class TranscribeResponse(_message.Message):
    __slots__ = ("info", "segments", "summary")
    INFO_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    info: TranscriptionInfo
    segments: _containers.RepeatedCompositeFieldContainer[Segment]
    summary: TranscriptionSummary
    def __init__(self, info: _Optional[_Union[TranscriptionInfo, _Mapping]] = ..., segments: _Optional[_Iterable[_Union[Segment, _Mapping]]] = ..., summary: _Optional[_Union[TranscriptionSummary, _Mapping]] = ...) -> None: ...

class StreamTranscribeRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: StreamTranscribeHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[StreamTranscribeHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class StreamTranscribeHeader(_message.Message):
    __slots__ = ("upload", "options")
    UPLOAD_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    upload: _upload_pb2.UploadHeader
    options: TranscriptionOptions
    def __init__(self, upload: _Optional[_Union[_upload_pb2.UploadHeader, _Mapping]] = ..., options: _Optional[_Union[TranscriptionOptions, _Mapping]] = ...) -> None: ...

class StreamTranscribeResponse(_message.Message):
    __slots__ = ("info", "segment", "summary")
    INFO_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    info: TranscriptionInfo
    segment: Segment
    summary: TranscriptionSummary
    def __init__(self, info: _Optional[_Union[TranscriptionInfo, _Mapping]] = ..., segment: _Optional[_Union[Segment, _Mapping]] = ..., summary: _Optional[_Union[TranscriptionSummary, _Mapping]] = ...) -> None: ...

class TranscriptionInfo(_message.Message):
    __slots__ = ("language", "language_probability", "duration_seconds", "duration_after_vad_seconds", "model", "batched", "vad_filter", "condition_on_previous_text", "task", "declared_duration_seconds", "truncated")
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DURATION_AFTER_VAD_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    BATCHED_FIELD_NUMBER: _ClassVar[int]
    VAD_FILTER_FIELD_NUMBER: _ClassVar[int]
    CONDITION_ON_PREVIOUS_TEXT_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    DECLARED_DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    language: str
    language_probability: float
    duration_seconds: float
    duration_after_vad_seconds: float
    model: str
    batched: bool
    vad_filter: bool
    condition_on_previous_text: bool
    task: Task
    declared_duration_seconds: float
    truncated: bool
    def __init__(self, language: _Optional[str] = ..., language_probability: _Optional[float] = ..., duration_seconds: _Optional[float] = ..., duration_after_vad_seconds: _Optional[float] = ..., model: _Optional[str] = ..., batched: _Optional[bool] = ..., vad_filter: _Optional[bool] = ..., condition_on_previous_text: _Optional[bool] = ..., task: _Optional[_Union[Task, str]] = ..., declared_duration_seconds: _Optional[float] = ..., truncated: _Optional[bool] = ...) -> None: ...

class Segment(_message.Message):
    __slots__ = ("index", "time", "text", "words", "avg_logprob", "no_speech_probability", "compression_ratio", "temperature")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    WORDS_FIELD_NUMBER: _ClassVar[int]
    AVG_LOGPROB_FIELD_NUMBER: _ClassVar[int]
    NO_SPEECH_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    COMPRESSION_RATIO_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    index: int
    time: _geometry_pb2.TimeRange
    text: str
    words: _containers.RepeatedCompositeFieldContainer[Word]
    avg_logprob: float
    no_speech_probability: float
    compression_ratio: float
    temperature: float
    def __init__(self, index: _Optional[int] = ..., time: _Optional[_Union[_geometry_pb2.TimeRange, _Mapping]] = ..., text: _Optional[str] = ..., words: _Optional[_Iterable[_Union[Word, _Mapping]]] = ..., avg_logprob: _Optional[float] = ..., no_speech_probability: _Optional[float] = ..., compression_ratio: _Optional[float] = ..., temperature: _Optional[float] = ...) -> None: ...

class Word(_message.Message):
    __slots__ = ("text", "time", "probability")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    text: str
    time: _geometry_pb2.TimeRange
    probability: float
    def __init__(self, text: _Optional[str] = ..., time: _Optional[_Union[_geometry_pb2.TimeRange, _Mapping]] = ..., probability: _Optional[float] = ...) -> None: ...

class TranscriptionSummary(_message.Message):
    __slots__ = ("segment_count", "processing_seconds", "real_time_factor")
    SEGMENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    PROCESSING_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REAL_TIME_FACTOR_FIELD_NUMBER: _ClassVar[int]
    segment_count: int
    processing_seconds: float
    real_time_factor: float
    def __init__(self, segment_count: _Optional[int] = ..., processing_seconds: _Optional[float] = ..., real_time_factor: _Optional[float] = ...) -> None: ...
