import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from sensorium.type.v1 import errors_pb2 as _errors_pb2
from sensorium.type.v1 import upload_pb2 as _upload_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DocumentFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DOCUMENT_FORMAT_UNSPECIFIED: _ClassVar[DocumentFormat]
    DOCUMENT_FORMAT_DOCX: _ClassVar[DocumentFormat]
    DOCUMENT_FORMAT_PPTX: _ClassVar[DocumentFormat]
    DOCUMENT_FORMAT_XLSX: _ClassVar[DocumentFormat]
    DOCUMENT_FORMAT_ODT: _ClassVar[DocumentFormat]
    DOCUMENT_FORMAT_ODP: _ClassVar[DocumentFormat]
    DOCUMENT_FORMAT_ODS: _ClassVar[DocumentFormat]
    DOCUMENT_FORMAT_RTF: _ClassVar[DocumentFormat]
    DOCUMENT_FORMAT_EPUB: _ClassVar[DocumentFormat]
    DOCUMENT_FORMAT_HTML: _ClassVar[DocumentFormat]
    DOCUMENT_FORMAT_MARKDOWN: _ClassVar[DocumentFormat]
    DOCUMENT_FORMAT_ASCIIDOC: _ClassVar[DocumentFormat]
    DOCUMENT_FORMAT_RST: _ClassVar[DocumentFormat]
    DOCUMENT_FORMAT_TEXT: _ClassVar[DocumentFormat]
    DOCUMENT_FORMAT_CSV: _ClassVar[DocumentFormat]
    DOCUMENT_FORMAT_TSV: _ClassVar[DocumentFormat]
    DOCUMENT_FORMAT_VTT: _ClassVar[DocumentFormat]
    DOCUMENT_FORMAT_SRT: _ClassVar[DocumentFormat]
    DOCUMENT_FORMAT_EML: _ClassVar[DocumentFormat]
    DOCUMENT_FORMAT_MSG: _ClassVar[DocumentFormat]
    DOCUMENT_FORMAT_DOC: _ClassVar[DocumentFormat]
    DOCUMENT_FORMAT_XLS: _ClassVar[DocumentFormat]
    DOCUMENT_FORMAT_PPT: _ClassVar[DocumentFormat]

class SectionKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SECTION_KIND_UNSPECIFIED: _ClassVar[SectionKind]
    SECTION_KIND_TEXT: _ClassVar[SectionKind]
    SECTION_KIND_TABLE: _ClassVar[SectionKind]
DOCUMENT_FORMAT_UNSPECIFIED: DocumentFormat
DOCUMENT_FORMAT_DOCX: DocumentFormat
DOCUMENT_FORMAT_PPTX: DocumentFormat
DOCUMENT_FORMAT_XLSX: DocumentFormat
DOCUMENT_FORMAT_ODT: DocumentFormat
DOCUMENT_FORMAT_ODP: DocumentFormat
DOCUMENT_FORMAT_ODS: DocumentFormat
DOCUMENT_FORMAT_RTF: DocumentFormat
DOCUMENT_FORMAT_EPUB: DocumentFormat
DOCUMENT_FORMAT_HTML: DocumentFormat
DOCUMENT_FORMAT_MARKDOWN: DocumentFormat
DOCUMENT_FORMAT_ASCIIDOC: DocumentFormat
DOCUMENT_FORMAT_RST: DocumentFormat
DOCUMENT_FORMAT_TEXT: DocumentFormat
DOCUMENT_FORMAT_CSV: DocumentFormat
DOCUMENT_FORMAT_TSV: DocumentFormat
DOCUMENT_FORMAT_VTT: DocumentFormat
DOCUMENT_FORMAT_SRT: DocumentFormat
DOCUMENT_FORMAT_EML: DocumentFormat
DOCUMENT_FORMAT_MSG: DocumentFormat
DOCUMENT_FORMAT_DOC: DocumentFormat
DOCUMENT_FORMAT_XLS: DocumentFormat
DOCUMENT_FORMAT_PPT: DocumentFormat
SECTION_KIND_UNSPECIFIED: SectionKind
SECTION_KIND_TEXT: SectionKind
SECTION_KIND_TABLE: SectionKind

class ParseOptions(_message.Message):
    __slots__ = ("include_pictures", "include_attachments", "attached", "max_sections_per_message")
    INCLUDE_PICTURES_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_ATTACHMENTS_FIELD_NUMBER: _ClassVar[int]
    ATTACHED_FIELD_NUMBER: _ClassVar[int]
    MAX_SECTIONS_PER_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    include_pictures: bool
    include_attachments: bool
    attached: bool
    max_sections_per_message: int
    def __init__(self, include_pictures: _Optional[bool] = ..., include_attachments: _Optional[bool] = ..., attached: _Optional[bool] = ..., max_sections_per_message: _Optional[int] = ...) -> None: ...

class ParseDocumentRequest(_message.Message):
    __slots__ = ("content", "filename", "options")
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    content: bytes
    filename: str
    options: ParseOptions
    def __init__(self, content: _Optional[bytes] = ..., filename: _Optional[str] = ..., options: _Optional[_Union[ParseOptions, _Mapping]] = ...) -> None: ...

class ParseDocumentResponse(_message.Message):
    __slots__ = ("metadata", "sections", "summary")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    SECTIONS_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    metadata: DocumentMetadata
    sections: _containers.RepeatedCompositeFieldContainer[Section]
    summary: ParseSummary
    def __init__(self, metadata: _Optional[_Union[DocumentMetadata, _Mapping]] = ..., sections: _Optional[_Iterable[_Union[Section, _Mapping]]] = ..., summary: _Optional[_Union[ParseSummary, _Mapping]] = ...) -> None: ...

class StreamParseDocumentRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: StreamParseDocumentHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[StreamParseDocumentHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class StreamParseDocumentHeader(_message.Message):
    __slots__ = ("upload", "options")
    UPLOAD_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    upload: _upload_pb2.UploadHeader
    options: ParseOptions
    def __init__(self, upload: _Optional[_Union[_upload_pb2.UploadHeader, _Mapping]] = ..., options: _Optional[_Union[ParseOptions, _Mapping]] = ...) -> None: ...

class StreamParseDocumentResponse(_message.Message):
    __slots__ = ("metadata", "sections", "picture", "attachment", "summary")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    SECTIONS_FIELD_NUMBER: _ClassVar[int]
    PICTURE_FIELD_NUMBER: _ClassVar[int]
    ATTACHMENT_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    metadata: DocumentMetadata
    sections: SectionBatch
    picture: Picture
    attachment: AttachmentPart
    summary: ParseSummary
    def __init__(self, metadata: _Optional[_Union[DocumentMetadata, _Mapping]] = ..., sections: _Optional[_Union[SectionBatch, _Mapping]] = ..., picture: _Optional[_Union[Picture, _Mapping]] = ..., attachment: _Optional[_Union[AttachmentPart, _Mapping]] = ..., summary: _Optional[_Union[ParseSummary, _Mapping]] = ...) -> None: ...

class SectionBatch(_message.Message):
    __slots__ = ("sections",)
    SECTIONS_FIELD_NUMBER: _ClassVar[int]
    sections: _containers.RepeatedCompositeFieldContainer[Section]
    def __init__(self, sections: _Optional[_Iterable[_Union[Section, _Mapping]]] = ...) -> None: ...

class DocumentMetadata(_message.Message):
    __slots__ = ("format", "title", "author", "created", "modified", "language", "page_count", "converted_with", "extra", "errors")
    class ExtraEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    MODIFIED_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    PAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    CONVERTED_WITH_FIELD_NUMBER: _ClassVar[int]
    EXTRA_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    format: DocumentFormat
    title: str
    author: str
    created: _timestamp_pb2.Timestamp
    modified: _timestamp_pb2.Timestamp
    language: str
    page_count: int
    converted_with: str
    extra: _containers.ScalarMap[str, str]
    errors: _containers.RepeatedCompositeFieldContainer[_errors_pb2.ItemError]
    def __init__(self, format: _Optional[_Union[DocumentFormat, str]] = ..., title: _Optional[str] = ..., author: _Optional[str] = ..., created: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., modified: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., language: _Optional[str] = ..., page_count: _Optional[int] = ..., converted_with: _Optional[str] = ..., extra: _Optional[_Mapping[str, str]] = ..., errors: _Optional[_Iterable[_Union[_errors_pb2.ItemError, _Mapping]]] = ...) -> None: ...

class Locator(_message.Message):
    __slots__ = ("page", "title", "sheet", "cells", "headings", "line", "start_seconds", "end_seconds", "description")
    PAGE_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    SHEET_FIELD_NUMBER: _ClassVar[int]
    CELLS_FIELD_NUMBER: _ClassVar[int]
    HEADINGS_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    START_SECONDS_FIELD_NUMBER: _ClassVar[int]
    END_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    page: int
    title: str
    sheet: str
    cells: str
    headings: _containers.RepeatedScalarFieldContainer[str]
    line: int
    start_seconds: float
    end_seconds: float
    description: str
    def __init__(self, page: _Optional[int] = ..., title: _Optional[str] = ..., sheet: _Optional[str] = ..., cells: _Optional[str] = ..., headings: _Optional[_Iterable[str]] = ..., line: _Optional[int] = ..., start_seconds: _Optional[float] = ..., end_seconds: _Optional[float] = ..., description: _Optional[str] = ...) -> None: ...

class Section(_message.Message):
    __slots__ = ("text", "locator", "kind", "error")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    LOCATOR_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    text: str
    locator: Locator
    kind: SectionKind
    error: _errors_pb2.ItemError
    def __init__(self, text: _Optional[str] = ..., locator: _Optional[_Union[Locator, _Mapping]] = ..., kind: _Optional[_Union[SectionKind, str]] = ..., error: _Optional[_Union[_errors_pb2.ItemError, _Mapping]] = ...) -> None: ...

class Picture(_message.Message):
    __slots__ = ("data", "format", "width", "height", "locator", "name", "error")
    DATA_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    LOCATOR_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    format: str
    width: int
    height: int
    locator: Locator
    name: str
    error: _errors_pb2.ItemError
    def __init__(self, data: _Optional[bytes] = ..., format: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., locator: _Optional[_Union[Locator, _Mapping]] = ..., name: _Optional[str] = ..., error: _Optional[_Union[_errors_pb2.ItemError, _Mapping]] = ...) -> None: ...

class AttachmentPart(_message.Message):
    __slots__ = ("name", "path", "size_bytes", "offset", "data", "error")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    name: str
    path: str
    size_bytes: int
    offset: int
    data: bytes
    error: _errors_pb2.ItemError
    def __init__(self, name: _Optional[str] = ..., path: _Optional[str] = ..., size_bytes: _Optional[int] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ..., error: _Optional[_Union[_errors_pb2.ItemError, _Mapping]] = ...) -> None: ...

class ParseSummary(_message.Message):
    __slots__ = ("sections", "sections_failed", "characters", "pictures", "attachments", "processing_seconds")
    SECTIONS_FIELD_NUMBER: _ClassVar[int]
    SECTIONS_FAILED_FIELD_NUMBER: _ClassVar[int]
    CHARACTERS_FIELD_NUMBER: _ClassVar[int]
    PICTURES_FIELD_NUMBER: _ClassVar[int]
    ATTACHMENTS_FIELD_NUMBER: _ClassVar[int]
    PROCESSING_SECONDS_FIELD_NUMBER: _ClassVar[int]
    sections: int
    sections_failed: int
    characters: int
    pictures: int
    attachments: int
    processing_seconds: float
    def __init__(self, sections: _Optional[int] = ..., sections_failed: _Optional[int] = ..., characters: _Optional[int] = ..., pictures: _Optional[int] = ..., attachments: _Optional[int] = ..., processing_seconds: _Optional[float] = ...) -> None: ...
