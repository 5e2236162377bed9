"""STRICT_SKIPS=1 (scripts/test and CI): a skipped test fails the run unless its reason says it
is allowed here, e.g. "[allowed] needs a CUDA GPU". A silently skipped suite proves nothing.

Both kinds of skip count: those at run time (`pytest.skip`, skip marks) and those at collection
time (a module-level `pytest.importorskip` or `pytest.skip(allow_module_level=True)` skips the
whole module before any test in it exists). Loaded by tests/conftest.py as a plugin.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

ALLOWED_SKIP = "[allowed]"
_unexpected_skips: list[str] = []


def _strict() -> bool:
    return os.environ.get("STRICT_SKIPS") == "1"


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    return str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(report.longrepr or "")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = _reason(report)
        if ALLOWED_SKIP not in reason:
            _unexpected_skips.append(f"{report.nodeid}: {reason}")


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.skipped:
        reason = _reason(report)
        if ALLOWED_SKIP not in reason:
            _unexpected_skips.append(f"{report.nodeid} (whole module, at collection): {reason}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _strict() and _unexpected_skips and exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _strict() and _unexpected_skips:
        terminalreporter.section("unexpected skips (STRICT_SKIPS=1 fails the run)")
        for line in _unexpected_skips:
            terminalreporter.write_line(line)
