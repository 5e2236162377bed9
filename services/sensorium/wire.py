"""What every wire module shares: protobuf's JSON mapping, for front ends that print messages
(the CLI's `--json`) without handling protobuf themselves."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message


def to_json(message: Message) -> str:
    """`message` in protobuf's JSON mapping, indented for people."""
    return json_format.MessageToJson(message, indent=2)


def to_dict(message: Message) -> dict[str, Any]:
    """`message` in protobuf's JSON mapping, as a dict."""
    return json_format.MessageToDict(message)
