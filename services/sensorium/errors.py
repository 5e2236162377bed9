"""Domain errors: what went wrong and what to do about it, with no transport attached.

Engines and runtimes raise `SensoriumError(Reason.X, "what happened and what to do")`; they know
nothing about gRPC. Front ends decide how a person sees it: the server maps the reason to a
status code and rich details (`sensorium.status`), the in-process CLI and the index job print
it. An error that reports a configured limit names the setting (`setting`, a path such as
"pdf.max_pages"); each front end says how to change it (`explain`), because a remote client
asks the operator while a local user sets the variable themselves.

This module imports nothing beyond the standard library: PDF worker processes import it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Literal

DOMAIN = "sensorium.dev"
"""`ErrorInfo.domain` of every Sensorium error."""

# Metadata keys a client may find in `ErrorInfo.metadata`; documented in docs/errors.md.
REQUEST_ID = "request_id"
SETTING = "setting"
"""Metadata key naming the environment variable of the limit an error reports."""


class Reason(enum.IntEnum):
    """Mirror of `sensorium.type.v1.ErrorReason` (values equal; a unit test keeps them in step)."""

    INVALID_REQUEST = 1
    INPUT_EMPTY = 2
    INPUT_TOO_LARGE = 3
    PROCESSING_LIMIT = 4
    UNSUPPORTED_TYPE = 5
    PDF_UNREADABLE = 10
    PDF_NO_PAGES = 11
    PDF_PASSWORD_REQUIRED = 12
    PDF_PASSWORD_INCORRECT = 13
    PDF_TOO_MANY_PAGES = 14
    PDF_PAGE_FAILED = 15
    PAGE_OUT_OF_RANGE = 16
    DOCUMENT_UNREADABLE = 17
    DOCUMENT_ENCRYPTED = 18
    DOCUMENT_UNSAFE = 19
    IMAGE_UNDECODABLE = 20
    IMAGE_TOO_LARGE = 21
    TEXT_TOO_LONG = 22
    AUDIO_UNDECODABLE = 30
    AUDIO_TOO_LONG = 31
    AUDIO_TRUNCATED = 32
    VIDEO_UNDECODABLE = 33
    VIDEO_TRUNCATED = 34
    OVERLOADED = 40
    GPU_OUT_OF_MEMORY = 41
    CLIENT_LIMIT = 42
    NOT_READY = 50
    SHUTTING_DOWN = 51
    NOT_HOSTED = 60
    PARSER_CRASH = 70
    INTERNAL_ERROR = 71
    UNAUTHENTICATED = 80
    PERMISSION_DENIED = 81

    def to_proto(self) -> str:
        """The proto enum value's name (protobuf accepts names wherever an enum goes)."""
        return f"ERROR_REASON_{self.name}"


@dataclass(eq=False)
class SensoriumError(Exception):
    """A failure with a known cause: `message` says what happened and what to do about it."""

    reason: Reason
    message: str
    metadata: dict[str, str] = field(default_factory=dict)
    retry_after_seconds: float | None = None
    setting: str = ""
    """The setting whose limit this error reports ("pdf.max_pages"); "" when none."""

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __reduce__(self) -> tuple[Any, ...]:
        # Errors cross process boundaries (PDF workers); keep every field through pickling.
        return (SensoriumError, (self.reason, self.message, self.metadata, self.retry_after_seconds,
                                 self.setting))

    def __str__(self) -> str:
        return f"{self.reason.name}: {self.message}"


class ServiceStartError(Exception):
    """A service cannot start; the message says why and how to fix it."""


class ModelError(Exception):
    """A model's weights cannot be found or prepared; the message says why and what to do."""


def internal_error(request_id: str) -> SensoriumError:
    """The answer to an unexpected exception: no exception text, only a handle into the logs."""
    return SensoriumError(
        Reason.INTERNAL_ERROR,
        f"internal server error; quote request id {request_id} when reporting it",
        {REQUEST_ID: request_id},
    )


def setting_variable(setting: str) -> str:
    """The environment variable of a settings path: "pdf.max_pages" -> SENSORIUM_PDF__MAX_PAGES."""
    return "SENSORIUM_" + "__".join(setting.split(".")).upper()


Audience = Literal["client", "operator"]
"""Who reads an error: a remote client (the limit is the server's), or the person who runs
Sensorium in their own process (the CLI, the index job), who can change it."""


def explain(error: SensoriumError, audience: Audience) -> str:
    """The error's message, with how to change the limit it reports when it reports one."""
    return explain_setting(error.message, error.setting, audience, "limit")


def explain_setting(message: str, setting: str, audience: Audience, what: str = "setting") -> str:
    """`message` with how `audience` changes `setting` (a settings path), when there is one."""
    if not setting or not message:
        return message
    variable = setting_variable(setting)
    if audience == "client":
        return f"{message} (the server's {what}, set by its operator with {variable})"
    return f"{message} (to change the {what}, set {variable})"
