"""Mail: .eml with the standard library's `email` (policy.default), Outlook .msg with
extract-msg.

A mail yields a header section (from, to, cc, date, subject: what people search mail by), its
body (the plain-text part, else the HTML part read as HTML), and its attachments as files of
their own at "<mail>!/<name>", one level deep: a mail that is itself an attachment lists its
attachments with an error instead of passing them on.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import email.utils
import re
from email.message import EmailMessage, Message
from typing import Any

from sensorium.document.api import ATTACHMENT_SEPARATOR, Attachment, Locator, Metadata
from sensorium.document.builder import Builder
from sensorium.document.guards import unreadable
from sensorium.document.markup import parse_html
from sensorium.errors import Reason, SensoriumError

_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\]+")


def parse_eml(path: str, name: str, builder: Builder, *, nested: bool) -> tuple[Metadata, dict[str, str]]:
    with open(path, "rb") as handle:
        message = email.message_from_binary_file(handle, policy=email.policy.default)
    if not isinstance(message, EmailMessage) or not message.keys():
        raise unreadable("the mail has no headers; it is damaged or not a mail")
    headers = {key: _header(message, key) for key in ("from", "to", "cc", "date", "subject")}
    _header_section(headers, builder)
    body = message.get_body(preferencelist=("plain", "html"))
    if body is not None:
        content = _content(body)
        if body.get_content_subtype() == "html":
            parse_html(content, builder)
        else:
            builder.section(content, Locator())
    attachments = []
    for part in message.iter_attachments():
        filename = part.get_filename()
        if part.get_content_type() == "message/rfc822":
            inner = part.get_payload(0) if part.is_multipart() else None
            if isinstance(inner, Message):
                subject = str(inner.get("subject", "") or "attached mail")
                data = inner.as_bytes(policy=email.policy.default)
                attachments.append((filename or f"{subject}.eml", data))
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes) and (filename or payload):
            attachments.append((filename or f"attachment.{part.get_content_subtype()}", payload))
    _attachments(attachments, name, builder, nested=nested)
    return _metadata(headers), {key: value for key, value in headers.items() if value}


def _header(message: EmailMessage, key: str) -> str:
    try:
        return " ".join(str(message.get(key, "") or "").split())
    except (ValueError, TypeError, IndexError, AttributeError):  # malformed encoded words
        raw = message.get_all(key, [])
        return " ".join(str(raw[0]).split()) if raw else ""


def _content(part: Any) -> str:
    try:
        content = part.get_content()
    except (LookupError, ValueError, AttributeError):  # unknown charset, broken encoding
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    return content if isinstance(content, str) else ""


def _header_section(headers: dict[str, str], builder: Builder) -> None:
    lines = [f"{key.capitalize()}: {value}" for key, value in headers.items() if value]
    builder.section("\n".join(lines), Locator(headings=("headers",)))


def _metadata(headers: dict[str, str]) -> Metadata:
    date = None
    if headers.get("date"):
        try:
            date = email.utils.parsedate_to_datetime(headers["date"])
        except (TypeError, ValueError, IndexError):
            date = None
        if date is not None and date.tzinfo is None:
            date = date.replace(tzinfo=dt.UTC)
    return Metadata(title=headers.get("subject", ""), author=headers.get("from", ""), modified=date)


def _attachments(found: list[tuple[str, bytes]], name: str, builder: Builder, *, nested: bool) -> None:
    used: set[str] = set()
    for raw_name, data in found:
        safe = _safe_name(raw_name, used)
        path = f"{name}{ATTACHMENT_SEPARATOR}{safe}"
        error = None
        if nested:
            error = SensoriumError(
                Reason.PROCESSING_LIMIT,
                f"{safe!r} is attached to a mail that is itself an attachment; attachments are "
                "indexed one level deep only",
                {"limit_depth": "1"},
            )
        elif len(data) > builder.limits.max_attachment_bytes:
            error = SensoriumError(
                Reason.INPUT_TOO_LARGE,
                f"the attachment {safe!r} has {len(data):,} bytes, more than the limit of "
                f"{builder.limits.max_attachment_bytes:,}",
                {"size_bytes": str(len(data)), "limit_bytes": str(builder.limits.max_attachment_bytes)},
                setting="document.max_attachment_bytes",
            )
        builder.attachments.append(Attachment(safe, path, b"" if error else data, error))


def _safe_name(name: str, used: set[str]) -> str:
    """A file name for the attachment: no folders or control characters, unique in the mail."""
    base = _UNSAFE_NAME.sub("_", name).strip(" .") or "attachment"
    base = base[:200]
    candidate, number = base, 2
    while candidate in used:
        stem, dot, suffix = base.rpartition(".")
        candidate = f"{stem} ({number}).{suffix}" if dot and stem else f"{base} ({number})"
        number += 1
    used.add(candidate)
    return candidate


def parse_msg(path: str, name: str, builder: Builder, *, nested: bool) -> tuple[Metadata, dict[str, str]]:
    import extract_msg
    from extract_msg.exceptions import ExMsgBaseException

    try:
        message: Any = extract_msg.openMsg(path, delayAttachments=False)
    except (ExMsgBaseException, OSError, ValueError, KeyError, IndexError, TypeError) as error:
        raise unreadable(f"the Outlook .msg file cannot be read ({type(error).__name__}); it is damaged "
                         "or not a mail") from None
    try:
        date = message.date
        headers = {
            "from": " ".join(str(message.sender or "").split()),
            "to": " ".join(str(message.to or "").split()),
            "cc": " ".join(str(message.cc or "").split()),
            "date": date.isoformat() if isinstance(date, dt.datetime) else "",
            "subject": " ".join(str(message.subject or "").split()),
        }
        _header_section(headers, builder)
        body = message.body
        if body and str(body).strip():
            builder.section(str(body), Locator())
        else:
            html = message.htmlBody
            if html:
                parse_html(html, builder)
        found: list[tuple[str, bytes]] = []
        for attachment in message.attachments:
            data = attachment.data
            label = str(attachment.longFilename or attachment.shortFilename or attachment.name or "")
            if isinstance(data, bytes):
                found.append((label or "attachment", data))
            elif hasattr(data, "exportBytes"):  # an attached .msg
                subject = getattr(data, "subject", "") or "attached mail"
                found.append((label or f"{subject}.msg", data.exportBytes()))
        _attachments(found, name, builder, nested=nested)
    finally:
        message.close()
    metadata = Metadata(
        title=headers["subject"], author=headers["from"],
        modified=date if isinstance(date, dt.datetime) and date.tzinfo else None,
    )
    return metadata, {key: value for key, value in headers.items() if value}
