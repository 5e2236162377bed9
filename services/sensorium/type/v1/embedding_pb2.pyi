from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EmbeddingSpace(_message.Message):
    __slots__ = ("model", "pretrained", "weights_sha256", "dimension", "normalized")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PRETRAINED_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_SHA256_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    NORMALIZED_FIELD_NUMBER: _ClassVar[int]
    model: str
    pretrained: str
    weights_sha256: str
    dimension: int
    normalized: bool
    def __init__(self, model: _Optional[str] = ..., pretrained: _Optional[str] = ..., weights_sha256: _Optional[str] = ..., dimension: _Optional[int] = ..., normalized: _Optional[bool] = ...) -> None: ...

class Vector(_message.Message):
    __slots__ = ("values", "space")
    VALUES_FIELD_NUMBER: _ClassVar[int]
    SPACE_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    space: EmbeddingSpace
    def __init__(self, values: _Optional[_Iterable[float]] = ..., space: _Optional[_Union[EmbeddingSpace, _Mapping]] = ...) -> None: ...
