import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from sensorium.type.v1 import geometry_pb2 as _geometry_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SearchMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEARCH_MODE_UNSPECIFIED: _ClassVar[SearchMode]
    SEARCH_MODE_HYBRID: _ClassVar[SearchMode]
    SEARCH_MODE_VECTOR: _ClassVar[SearchMode]
    SEARCH_MODE_TEXT: _ClassVar[SearchMode]
SEARCH_MODE_UNSPECIFIED: SearchMode
SEARCH_MODE_HYBRID: SearchMode
SEARCH_MODE_VECTOR: SearchMode
SEARCH_MODE_TEXT: SearchMode

class SearchRequest(_message.Message):
    __slots__ = ("text", "image", "k", "offset", "mode", "kinds", "path_glob", "modified_after", "modified_before", "min_score", "chunks")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    PATH_GLOB_FIELD_NUMBER: _ClassVar[int]
    MODIFIED_AFTER_FIELD_NUMBER: _ClassVar[int]
    MODIFIED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    MIN_SCORE_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    text: str
    image: bytes
    k: int
    offset: int
    mode: SearchMode
    kinds: _containers.RepeatedScalarFieldContainer[str]
    path_glob: str
    modified_after: _timestamp_pb2.Timestamp
    modified_before: _timestamp_pb2.Timestamp
    min_score: float
    chunks: bool
    def __init__(self, text: _Optional[str] = ..., image: _Optional[bytes] = ..., k: _Optional[int] = ..., offset: _Optional[int] = ..., mode: _Optional[_Union[SearchMode, str]] = ..., kinds: _Optional[_Iterable[str]] = ..., path_glob: _Optional[str] = ..., modified_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., modified_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., min_score: _Optional[float] = ..., chunks: _Optional[bool] = ...) -> None: ...

class Place(_message.Message):
    __slots__ = ("kind", "score", "page", "start_seconds", "end_seconds", "section", "cells")
    KIND_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    START_SECONDS_FIELD_NUMBER: _ClassVar[int]
    END_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SECTION_FIELD_NUMBER: _ClassVar[int]
    CELLS_FIELD_NUMBER: _ClassVar[int]
    kind: str
    score: float
    page: int
    start_seconds: float
    end_seconds: float
    section: str
    cells: str
    def __init__(self, kind: _Optional[str] = ..., score: _Optional[float] = ..., page: _Optional[int] = ..., start_seconds: _Optional[float] = ..., end_seconds: _Optional[float] = ..., section: _Optional[str] = ..., cells: _Optional[str] = ...) -> None: ...

class Highlight(_message.Message):
    __slots__ = ("start", "end")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    start: int
    end: int
    def __init__(self, start: _Optional[int] = ..., end: _Optional[int] = ...) -> None: ...

class FileResult(_message.Message):
    __slots__ = ("path", "kind", "score", "places", "files", "snippet", "highlights", "title", "author")
    PATH_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    PLACES_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    SNIPPET_FIELD_NUMBER: _ClassVar[int]
    HIGHLIGHTS_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    path: str
    kind: str
    score: float
    places: _containers.RepeatedCompositeFieldContainer[Place]
    files: _containers.RepeatedScalarFieldContainer[str]
    snippet: str
    highlights: _containers.RepeatedCompositeFieldContainer[Highlight]
    title: str
    author: str
    def __init__(self, path: _Optional[str] = ..., kind: _Optional[str] = ..., score: _Optional[float] = ..., places: _Optional[_Iterable[_Union[Place, _Mapping]]] = ..., files: _Optional[_Iterable[str]] = ..., snippet: _Optional[str] = ..., highlights: _Optional[_Iterable[_Union[Highlight, _Mapping]]] = ..., title: _Optional[str] = ..., author: _Optional[str] = ...) -> None: ...

class Chunk(_message.Message):
    __slots__ = ("score", "unit", "ordinal", "content_sha256", "path", "kind", "page", "bbox", "start_seconds", "end_seconds", "text", "space", "passage", "section", "cells", "title", "author", "taken_at", "mtime", "snippet")
    SCORE_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    ORDINAL_FIELD_NUMBER: _ClassVar[int]
    CONTENT_SHA256_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    BBOX_FIELD_NUMBER: _ClassVar[int]
    START_SECONDS_FIELD_NUMBER: _ClassVar[int]
    END_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SPACE_FIELD_NUMBER: _ClassVar[int]
    PASSAGE_FIELD_NUMBER: _ClassVar[int]
    SECTION_FIELD_NUMBER: _ClassVar[int]
    CELLS_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    TAKEN_AT_FIELD_NUMBER: _ClassVar[int]
    MTIME_FIELD_NUMBER: _ClassVar[int]
    SNIPPET_FIELD_NUMBER: _ClassVar[int]
    score: float
    unit: str
    ordinal: int
    content_sha256: str
    path: str
    kind: str
    page: int
    bbox: _geometry_pb2.BoundingBox
    start_seconds: float
    end_seconds: float
    text: str
    space: str
    passage: int
    section: str
    cells: str
    title: str
    author: str
    taken_at: _timestamp_pb2.Timestamp
    mtime: _timestamp_pb2.Timestamp
    snippet: str
    def __init__(self, score: _Optional[float] = ..., unit: _Optional[str] = ..., ordinal: _Optional[int] = ..., content_sha256: _Optional[str] = ..., path: _Optional[str] = ..., kind: _Optional[str] = ..., page: _Optional[int] = ..., bbox: _Optional[_Union[_geometry_pb2.BoundingBox, _Mapping]] = ..., start_seconds: _Optional[float] = ..., end_seconds: _Optional[float] = ..., text: _Optional[str] = ..., space: _Optional[str] = ..., passage: _Optional[int] = ..., section: _Optional[str] = ..., cells: _Optional[str] = ..., title: _Optional[str] = ..., author: _Optional[str] = ..., taken_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., mtime: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., snippet: _Optional[str] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("results", "chunks", "lag")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    LAG_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[FileResult]
    chunks: _containers.RepeatedCompositeFieldContainer[Chunk]
    lag: str
    def __init__(self, results: _Optional[_Iterable[_Union[FileResult, _Mapping]]] = ..., chunks: _Optional[_Iterable[_Union[Chunk, _Mapping]]] = ..., lag: _Optional[str] = ...) -> None: ...
