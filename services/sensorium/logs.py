"""Logging set-up: key=value lines for people, or JSON lines for log pipelines."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, Literal

# Attributes every LogRecord has; anything else was passed with `extra=` and is a field.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class TextFormatter(logging.Formatter):
    """`2026-11-26T10:00:00.123Z INFO sensorium.server message key=value ...`"""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        parts = [f"{stamp}.{int(record.msecs):03d}Z", record.levelname, record.name,
                 record.getMessage()]
        parts += [f"{k}={_quote(v)}" for k, v in _fields(record).items()]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": record.created, "level": record.levelname, "logger": record.name,
            "message": record.getMessage(), **_fields(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(level: str = "INFO", fmt: Literal["text", "json"] = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    if logging.getLevelName(level) != logging.DEBUG:
        # The libraries narrate at INFO (open_clip each loading step on the root logger,
        # faster-whisper every file's duration): for a job over 10,000 files that buries the
        # lines a person reads. Their warnings still show; DEBUG shows everything.
        handler.addFilter(_ours_or_warning)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def _ours_or_warning(record: logging.LogRecord) -> bool:
    return record.name.startswith("sensorium") or record.levelno >= logging.WARNING


def _quote(value: Any) -> str:
    text = f"{value:.3f}" if isinstance(value, float) else str(value)
    return f'"{text}"' if (" " in text or not text) else text
