from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ErrorReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_REASON_UNSPECIFIED: _ClassVar[ErrorReason]
    ERROR_REASON_INVALID_REQUEST: _ClassVar[ErrorReason]
    ERROR_REASON_INPUT_EMPTY: _ClassVar[ErrorReason]
    ERROR_REASON_INPUT_TOO_LARGE: _ClassVar[ErrorReason]
    ERROR_REASON_PROCESSING_LIMIT: _ClassVar[ErrorReason]
    ERROR_REASON_UNSUPPORTED_TYPE: _ClassVar[ErrorReason]
    ERROR_REASON_PDF_UNREADABLE: _ClassVar[ErrorReason]
    ERROR_REASON_PDF_NO_PAGES: _ClassVar[ErrorReason]
    ERROR_REASON_PDF_PASSWORD_REQUIRED: _ClassVar[ErrorReason]
    ERROR_REASON_PDF_PASSWORD_INCORRECT: _ClassVar[ErrorReason]
    ERROR_REASON_PDF_TOO_MANY_PAGES: _ClassVar[ErrorReason]
    ERROR_REASON_PDF_PAGE_FAILED: _ClassVar[ErrorReason]
    ERROR_REASON_PAGE_OUT_OF_RANGE: _ClassVar[ErrorReason]
    ERROR_REASON_DOCUMENT_UNREADABLE: _ClassVar[ErrorReason]
    ERROR_REASON_DOCUMENT_ENCRYPTED: _ClassVar[ErrorReason]
    ERROR_REASON_DOCUMENT_UNSAFE: _ClassVar[ErrorReason]
    ERROR_REASON_IMAGE_UNDECODABLE: _ClassVar[ErrorReason]
    ERROR_REASON_IMAGE_TOO_LARGE: _ClassVar[ErrorReason]
    ERROR_REASON_TEXT_TOO_LONG: _ClassVar[ErrorReason]
    ERROR_REASON_AUDIO_UNDECODABLE: _ClassVar[ErrorReason]
    ERROR_REASON_AUDIO_TOO_LONG: _ClassVar[ErrorReason]
    ERROR_REASON_AUDIO_TRUNCATED: _ClassVar[ErrorReason]
    ERROR_REASON_VIDEO_UNDECODABLE: _ClassVar[ErrorReason]
    ERROR_REASON_VIDEO_TRUNCATED: _ClassVar[ErrorReason]
    ERROR_REASON_OVERLOADED: _ClassVar[ErrorReason]
    ERROR_REASON_GPU_OUT_OF_MEMORY: _ClassVar[ErrorReason]
    ERROR_REASON_CLIENT_LIMIT: _ClassVar[ErrorReason]
    ERROR_REASON_NOT_READY: _ClassVar[ErrorReason]
    ERROR_REASON_SHUTTING_DOWN: _ClassVar[ErrorReason]
    ERROR_REASON_NOT_HOSTED: _ClassVar[ErrorReason]
    ERROR_REASON_PARSER_CRASH: _ClassVar[ErrorReason]
    ERROR_REASON_INTERNAL_ERROR: _ClassVar[ErrorReason]
    ERROR_REASON_UNAUTHENTICATED: _ClassVar[ErrorReason]
    ERROR_REASON_PERMISSION_DENIED: _ClassVar[ErrorReason]
ERROR_REASON_UNSPECIFIED: ErrorReason
ERROR_REASON_INVALID_REQUEST: ErrorReason
ERROR_REASON_INPUT_EMPTY: ErrorReason
ERROR_REASON_INPUT_TOO_LARGE: ErrorReason
ERROR_REASON_PROCESSING_LIMIT: ErrorReason
ERROR_REASON_UNSUPPORTED_TYPE: ErrorReason
ERROR_REASON_PDF_UNREADABLE: ErrorReason
ERROR_REASON_PDF_NO_PAGES: ErrorReason
ERROR_REASON_PDF_PASSWORD_REQUIRED: ErrorReason
ERROR_REASON_PDF_PASSWORD_INCORRECT: ErrorReason
ERROR_REASON_PDF_TOO_MANY_PAGES: ErrorReason
ERROR_REASON_PDF_PAGE_FAILED: ErrorReason
ERROR_REASON_PAGE_OUT_OF_RANGE: ErrorReason
ERROR_REASON_DOCUMENT_UNREADABLE: ErrorReason
ERROR_REASON_DOCUMENT_ENCRYPTED: ErrorReason
ERROR_REASON_DOCUMENT_UNSAFE: ErrorReason
ERROR_REASON_IMAGE_UNDECODABLE: ErrorReason
ERROR_REASON_IMAGE_TOO_LARGE: ErrorReason
ERROR_REASON_TEXT_TOO_LONG: ErrorReason
ERROR_REASON_AUDIO_UNDECODABLE: ErrorReason
ERROR_REASON_AUDIO_TOO_LONG: ErrorReason
ERROR_REASON_AUDIO_TRUNCATED: ErrorReason
ERROR_REASON_VIDEO_UNDECODABLE: ErrorReason
ERROR_REASON_VIDEO_TRUNCATED: ErrorReason
ERROR_REASON_OVERLOADED: ErrorReason
ERROR_REASON_GPU_OUT_OF_MEMORY: ErrorReason
ERROR_REASON_CLIENT_LIMIT: ErrorReason
ERROR_REASON_NOT_READY: ErrorReason
ERROR_REASON_SHUTTING_DOWN: ErrorReason
ERROR_REASON_NOT_HOSTED: ErrorReason
ERROR_REASON_PARSER_CRASH: ErrorReason
ERROR_REASON_INTERNAL_ERROR: ErrorReason
ERROR_REASON_UNAUTHENTICATED: ErrorReason
ERROR_REASON_PERMISSION_DENIED: ErrorReason

class ItemError(_message.Message):
    __slots__ = ("reason", "message", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    reason: ErrorReason
    message: str
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, reason: _Optional[_Union[ErrorReason, str]] = ..., message: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...
