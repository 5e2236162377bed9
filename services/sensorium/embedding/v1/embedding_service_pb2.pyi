from sensorium.type.v1 import embedding_pb2 as _embedding_pb2
from sensorium.type.v1 import errors_pb2 as _errors_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TruncationMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRUNCATION_MODE_UNSPECIFIED: _ClassVar[TruncationMode]
    TRUNCATION_MODE_TRUNCATE: _ClassVar[TruncationMode]
    TRUNCATION_MODE_REJECT: _ClassVar[TruncationMode]

class ScoringFunction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SCORING_FUNCTION_UNSPECIFIED: _ClassVar[ScoringFunction]
    SCORING_FUNCTION_SOFTMAX: _ClassVar[ScoringFunction]
    SCORING_FUNCTION_SIGMOID: _ClassVar[ScoringFunction]
TRUNCATION_MODE_UNSPECIFIED: TruncationMode
TRUNCATION_MODE_TRUNCATE: TruncationMode
TRUNCATION_MODE_REJECT: TruncationMode
SCORING_FUNCTION_UNSPECIFIED: ScoringFunction
SCORING_FUNCTION_SOFTMAX: ScoringFunction
SCORING_FUNCTION_SIGMOID: ScoringFunction

class EmbedOptions(_message.Message):
    __slots__ = ("unnormalized", "truncation")
    UNNORMALIZED_FIELD_NUMBER: _ClassVar[int]
    TRUNCATION_FIELD_NUMBER: _ClassVar[int]
    unnormalized: bool
    truncation: TruncationMode
    def __init__(self, unnormalized: _Optional[bool] = ..., truncation: _Optional[_Union[TruncationMode, str]] = ...) -> None: ...

class EmbedTextsRequest(_message.Message):
    __slots__ = ("texts", "options")
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    options: EmbedOptions
    def __init__(self, texts: _Optional[_Iterable[str]] = ..., options: _Optional[_Union[EmbedOptions, _Mapping]] = ...) -> None: ...

class EmbedTextsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[TextEmbedding]
    def __init__(self, results: _Optional[_Iterable[_Union[TextEmbedding, _Mapping]]] = ...) -> None: ...

class TextEmbedding(_message.Message):
    __slots__ = ("vector", "error", "truncated", "token_count")
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    TOKEN_COUNT_FIELD_NUMBER: _ClassVar[int]
    vector: _embedding_pb2.Vector
    error: _errors_pb2.ItemError
    truncated: bool
    token_count: int
    def __init__(self, vector: _Optional[_Union[_embedding_pb2.Vector, _Mapping]] = ..., error: _Optional[_Union[_errors_pb2.ItemError, _Mapping]] = ..., truncated: _Optional[bool] = ..., token_count: _Optional[int] = ...) -> None: ...

class EmbedImagesRequest(_message.Message):
    __slots__ = ("images", "options")
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedScalarFieldContainer[bytes]
    options: EmbedOptions
    def __init__(self, images: _Optional[_Iterable[bytes]] = ..., options: _Optional[_Union[EmbedOptions, _Mapping]] = ...) -> None: ...

class EmbedImagesResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ImageEmbedding]
    def __init__(self, results: _Optional[_Iterable[_Union[ImageEmbedding, _Mapping]]] = ...) -> None: ...

class ImageEmbedding(_message.Message):
    __slots__ = ("vector", "error", "width", "height")
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    vector: _embedding_pb2.Vector
    error: _errors_pb2.ItemError
    width: int
    height: int
    def __init__(self, vector: _Optional[_Union[_embedding_pb2.Vector, _Mapping]] = ..., error: _Optional[_Union[_errors_pb2.ItemError, _Mapping]] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class StreamEmbedRequest(_message.Message):
    __slots__ = ("id", "text", "image", "options")
    ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    id: str
    text: str
    image: bytes
    options: EmbedOptions
    def __init__(self, id: _Optional[str] = ..., text: _Optional[str] = ..., image: _Optional[bytes] = ..., options: _Optional[_Union[EmbedOptions, _Mapping]] = ...) -> None: ...

class StreamEmbedResponse(_message.Message):
    __slots__ = ("id", "vector", "error", "truncated")
    ID_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    id: str
    vector: _embedding_pb2.Vector
    error: _errors_pb2.ItemError
    truncated: bool
    def __init__(self, id: _Optional[str] = ..., vector: _Optional[_Union[_embedding_pb2.Vector, _Mapping]] = ..., error: _Optional[_Union[_errors_pb2.ItemError, _Mapping]] = ..., truncated: _Optional[bool] = ...) -> None: ...

class ScoreRequest(_message.Message):
    __slots__ = ("images", "texts")
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedScalarFieldContainer[bytes]
    texts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, images: _Optional[_Iterable[bytes]] = ..., texts: _Optional[_Iterable[str]] = ...) -> None: ...

class ScoreResponse(_message.Message):
    __slots__ = ("rows", "scoring_function", "space")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    SCORING_FUNCTION_FIELD_NUMBER: _ClassVar[int]
    SPACE_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[ScoreRow]
    scoring_function: ScoringFunction
    space: _embedding_pb2.EmbeddingSpace
    def __init__(self, rows: _Optional[_Iterable[_Union[ScoreRow, _Mapping]]] = ..., scoring_function: _Optional[_Union[ScoringFunction, str]] = ..., space: _Optional[_Union[_embedding_pb2.EmbeddingSpace, _Mapping]] = ...) -> None: ...

class ScoreRow(_message.Message):
    __slots__ = ("similarities", "probabilities", "error")
    SIMILARITIES_FIELD_NUMBER: _ClassVar[int]
    PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    similarities: _containers.RepeatedScalarFieldContainer[float]
    probabilities: _containers.RepeatedScalarFieldContainer[float]
    error: _errors_pb2.ItemError
    def __init__(self, similarities: _Optional[_Iterable[float]] = ..., probabilities: _Optional[_Iterable[float]] = ..., error: _Optional[_Union[_errors_pb2.ItemError, _Mapping]] = ...) -> None: ...

class GetEmbeddingSpaceRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetEmbeddingSpaceResponse(_message.Message):
    __slots__ = ("space", "context_length", "scoring_function", "max_image_pixels", "max_image_bytes", "device")
    SPACE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_LENGTH_FIELD_NUMBER: _ClassVar[int]
    SCORING_FUNCTION_FIELD_NUMBER: _ClassVar[int]
    MAX_IMAGE_PIXELS_FIELD_NUMBER: _ClassVar[int]
    MAX_IMAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    space: _embedding_pb2.EmbeddingSpace
    context_length: int
    scoring_function: ScoringFunction
    max_image_pixels: int
    max_image_bytes: int
    device: str
    def __init__(self, space: _Optional[_Union[_embedding_pb2.EmbeddingSpace, _Mapping]] = ..., context_length: _Optional[int] = ..., scoring_function: _Optional[_Union[ScoringFunction, str]] = ..., max_image_pixels: _Optional[int] = ..., max_image_bytes: _Optional[int] = ..., device: _Optional[str] = ...) -> None: ...
