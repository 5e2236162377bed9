"""docs/errors.md stays true: every reason with its status code, and every metadata key the
services can send."""

from __future__ import annotations

import ast
import re

from sensorium.errors import REQUEST_ID, SETTING, Reason
from sensorium.status import CODES
from testkit import REPO

DOC = (REPO / "docs" / "errors.md").read_text()
SERVICES = REPO / "services" / "sensorium"


def _table_rows(heading: str) -> list[list[str]]:
    section = DOC.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("|").split(" | ") for line in section.splitlines() if line.startswith("| `")]
    return [[cell.strip() for cell in row] for row in rows]


def test_every_reason_is_documented_with_its_status_code():
    documented = {}
    for reason, code, *_ in _table_rows("Reasons"):
        codes = re.findall(r"`([A-Z_]+)`", code)
        documented[reason.strip("`")] = codes[0] if codes else None
    assert set(documented) == {r.name for r in Reason}
    for reason in Reason:
        if documented[reason.name] is not None:  # PDF_PAGE_FAILED is only ever per page
            assert documented[reason.name] == CODES[reason].name, reason


def _metadata_keys_sent() -> set[str]:
    """Keys of the metadata dicts given to SensoriumError (or to the PDF extractor's `failed`
    helper and its `meta` dict) anywhere in the package."""
    keys: set[str] = {REQUEST_ID, SETTING}  # added to every error by the transport (status.py)
    for path in SERVICES.rglob("*.py"):
        if path.name.endswith(("_pb2.py", "_pb2_grpc.py")):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            dicts: list[ast.expr] = []
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "SensoriumError":
                dicts += node.args[2:3] + [k.value for k in node.keywords if k.arg == "metadata"]
            elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "failed":
                keys |= {k.arg for k in node.keywords if k.arg}
            elif isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "meta":
                dicts.append(node.value)
            for value in dicts:
                if isinstance(value, ast.Dict):
                    keys |= {k.value for k in value.keys if isinstance(k, ast.Constant)}
    return keys


def test_every_metadata_key_sent_is_documented():
    sent = _metadata_keys_sent()
    assert {"limit_pixels", "size_bytes", "exit_code", "method"} <= sent  # the scan finds them
    documented = {key for row in _table_rows("Metadata keys") for key in re.findall(r"`(\w+)`", row[0])}
    assert sent == documented
