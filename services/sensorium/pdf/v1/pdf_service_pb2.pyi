import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from sensorium.type.v1 import errors_pb2 as _errors_pb2
from sensorium.type.v1 import geometry_pb2 as _geometry_pb2
from sensorium.type.v1 import upload_pb2 as _upload_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OcrMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OCR_MODE_UNSPECIFIED: _ClassVar[OcrMode]
    OCR_MODE_AUTO: _ClassVar[OcrMode]
    OCR_MODE_NEVER: _ClassVar[OcrMode]

class OcrStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OCR_STATUS_UNSPECIFIED: _ClassVar[OcrStatus]
    OCR_STATUS_NOT_NEEDED: _ClassVar[OcrStatus]
    OCR_STATUS_SKIPPED: _ClassVar[OcrStatus]
    OCR_STATUS_APPLIED: _ClassVar[OcrStatus]
    OCR_STATUS_UNAVAILABLE: _ClassVar[OcrStatus]
    OCR_STATUS_FAILED: _ClassVar[OcrStatus]
OCR_MODE_UNSPECIFIED: OcrMode
OCR_MODE_AUTO: OcrMode
OCR_MODE_NEVER: OcrMode
OCR_STATUS_UNSPECIFIED: OcrStatus
OCR_STATUS_NOT_NEEDED: OcrStatus
OCR_STATUS_SKIPPED: OcrStatus
OCR_STATUS_APPLIED: OcrStatus
OCR_STATUS_UNAVAILABLE: OcrStatus
OCR_STATUS_FAILED: OcrStatus

class ExtractOptions(_message.Message):
    __slots__ = ("first_page", "last_page", "password", "include_blocks", "include_images", "ocr_mode", "max_pages_per_message")
    FIRST_PAGE_FIELD_NUMBER: _ClassVar[int]
    LAST_PAGE_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_IMAGES_FIELD_NUMBER: _ClassVar[int]
    OCR_MODE_FIELD_NUMBER: _ClassVar[int]
    MAX_PAGES_PER_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    first_page: int
    last_page: int
    password: str
    include_blocks: bool
    include_images: bool
    ocr_mode: OcrMode
    max_pages_per_message: int
    def __init__(self, first_page: _Optional[int] = ..., last_page: _Optional[int] = ..., password: _Optional[str] = ..., include_blocks: _Optional[bool] = ..., include_images: _Optional[bool] = ..., ocr_mode: _Optional[_Union[OcrMode, str]] = ..., max_pages_per_message: _Optional[int] = ...) -> None: ...

class ExtractDocumentRequest(_message.Message):
    __slots__ = ("content", "options")
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    content: bytes
    options: ExtractOptions
    def __init__(self, content: _Optional[bytes] = ..., options: _Optional[_Union[ExtractOptions, _Mapping]] = ...) -> None: ...

class ExtractDocumentResponse(_message.Message):
    __slots__ = ("metadata", "pages", "summary")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    PAGES_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    metadata: DocumentMetadata
    pages: _containers.RepeatedCompositeFieldContainer[Page]
    summary: ExtractionSummary
    def __init__(self, metadata: _Optional[_Union[DocumentMetadata, _Mapping]] = ..., pages: _Optional[_Iterable[_Union[Page, _Mapping]]] = ..., summary: _Optional[_Union[ExtractionSummary, _Mapping]] = ...) -> None: ...

class StreamExtractDocumentRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: StreamExtractDocumentHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[StreamExtractDocumentHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class StreamExtractDocumentHeader(_message.Message):
    __slots__ = ("upload", "options")
    UPLOAD_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    upload: _upload_pb2.UploadHeader
    options: ExtractOptions
    def __init__(self, upload: _Optional[_Union[_upload_pb2.UploadHeader, _Mapping]] = ..., options: _Optional[_Union[ExtractOptions, _Mapping]] = ...) -> None: ...

class StreamExtractDocumentResponse(_message.Message):
    __slots__ = ("metadata", "page", "image", "summary", "pages")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    PAGES_FIELD_NUMBER: _ClassVar[int]
    metadata: DocumentMetadata
    page: Page
    image: EmbeddedImage
    summary: ExtractionSummary
    pages: PageBatch
    def __init__(self, metadata: _Optional[_Union[DocumentMetadata, _Mapping]] = ..., page: _Optional[_Union[Page, _Mapping]] = ..., image: _Optional[_Union[EmbeddedImage, _Mapping]] = ..., summary: _Optional[_Union[ExtractionSummary, _Mapping]] = ..., pages: _Optional[_Union[PageBatch, _Mapping]] = ...) -> None: ...

class PageBatch(_message.Message):
    __slots__ = ("pages",)
    PAGES_FIELD_NUMBER: _ClassVar[int]
    pages: _containers.RepeatedCompositeFieldContainer[Page]
    def __init__(self, pages: _Optional[_Iterable[_Union[Page, _Mapping]]] = ...) -> None: ...

class DocumentMetadata(_message.Message):
    __slots__ = ("title", "author", "subject", "keywords", "creator", "producer", "creation_time", "modification_time", "page_count", "pdf_version", "encrypted", "repaired")
    TITLE_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    KEYWORDS_FIELD_NUMBER: _ClassVar[int]
    CREATOR_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_FIELD_NUMBER: _ClassVar[int]
    CREATION_TIME_FIELD_NUMBER: _ClassVar[int]
    MODIFICATION_TIME_FIELD_NUMBER: _ClassVar[int]
    PAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    PDF_VERSION_FIELD_NUMBER: _ClassVar[int]
    ENCRYPTED_FIELD_NUMBER: _ClassVar[int]
    REPAIRED_FIELD_NUMBER: _ClassVar[int]
    title: str
    author: str
    subject: str
    keywords: str
    creator: str
    producer: str
    creation_time: _timestamp_pb2.Timestamp
    modification_time: _timestamp_pb2.Timestamp
    page_count: int
    pdf_version: str
    encrypted: bool
    repaired: bool
    def __init__(self, title: _Optional[str] = ..., author: _Optional[str] = ..., subject: _Optional[str] = ..., keywords: _Optional[str] = ..., creator: _Optional[str] = ..., producer: _Optional[str] = ..., creation_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., modification_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_count: _Optional[int] = ..., pdf_version: _Optional[str] = ..., encrypted: _Optional[bool] = ..., repaired: _Optional[bool] = ...) -> None: ...

class Page(_message.Message):
    __slots__ = ("page_number", "text", "blocks", "has_text_layer", "ocr_status", "ocr_message", "width", "height", "error", "image_count", "limit")
    PAGE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    HAS_TEXT_LAYER_FIELD_NUMBER: _ClassVar[int]
    OCR_STATUS_FIELD_NUMBER: _ClassVar[int]
    OCR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    IMAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    page_number: int
    text: str
    blocks: _containers.RepeatedCompositeFieldContainer[TextBlock]
    has_text_layer: bool
    ocr_status: OcrStatus
    ocr_message: str
    width: float
    height: float
    error: _errors_pb2.ItemError
    image_count: int
    limit: _errors_pb2.ItemError
    def __init__(self, page_number: _Optional[int] = ..., text: _Optional[str] = ..., blocks: _Optional[_Iterable[_Union[TextBlock, _Mapping]]] = ..., has_text_layer: _Optional[bool] = ..., ocr_status: _Optional[_Union[OcrStatus, str]] = ..., ocr_message: _Optional[str] = ..., width: _Optional[float] = ..., height: _Optional[float] = ..., error: _Optional[_Union[_errors_pb2.ItemError, _Mapping]] = ..., image_count: _Optional[int] = ..., limit: _Optional[_Union[_errors_pb2.ItemError, _Mapping]] = ...) -> None: ...

class TextBlock(_message.Message):
    __slots__ = ("bbox", "text")
    BBOX_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    bbox: _geometry_pb2.BoundingBox
    text: str
    def __init__(self, bbox: _Optional[_Union[_geometry_pb2.BoundingBox, _Mapping]] = ..., text: _Optional[str] = ...) -> None: ...

class EmbeddedImage(_message.Message):
    __slots__ = ("page_number", "index", "bbox", "format", "data", "width", "height", "error")
    PAGE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    BBOX_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    page_number: int
    index: int
    bbox: _geometry_pb2.BoundingBox
    format: str
    data: bytes
    width: int
    height: int
    error: _errors_pb2.ItemError
    def __init__(self, page_number: _Optional[int] = ..., index: _Optional[int] = ..., bbox: _Optional[_Union[_geometry_pb2.BoundingBox, _Mapping]] = ..., format: _Optional[str] = ..., data: _Optional[bytes] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., error: _Optional[_Union[_errors_pb2.ItemError, _Mapping]] = ...) -> None: ...

class ExtractionSummary(_message.Message):
    __slots__ = ("pages_extracted", "pages_failed", "pages_without_text", "images_extracted", "processing_seconds", "pages_truncated")
    PAGES_EXTRACTED_FIELD_NUMBER: _ClassVar[int]
    PAGES_FAILED_FIELD_NUMBER: _ClassVar[int]
    PAGES_WITHOUT_TEXT_FIELD_NUMBER: _ClassVar[int]
    IMAGES_EXTRACTED_FIELD_NUMBER: _ClassVar[int]
    PROCESSING_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PAGES_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    pages_extracted: int
    pages_failed: int
    pages_without_text: int
    images_extracted: int
    processing_seconds: float
    pages_truncated: int
    def __init__(self, pages_extracted: _Optional[int] = ..., pages_failed: _Optional[int] = ..., pages_without_text: _Optional[int] = ..., images_extracted: _Optional[int] = ..., processing_seconds: _Optional[float] = ..., pages_truncated: _Optional[int] = ...) -> None: ...
