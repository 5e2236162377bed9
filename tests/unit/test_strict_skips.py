"""STRICT_SKIPS=1 fails a run on any skip without an "[allowed]" reason, whether the skip
happens while a test runs or while its module is collected (tests/support/strict_skips.py).
Each case runs pytest on a small generated test folder, in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from testkit import REPO

PASSING = "def test_fine():\n    assert True\n"


def run_pytest(
    folder: Path, modules: dict[str, str], strict: bool = True
) -> subprocess.CompletedProcess[str]:
    for name, source in {"test_fine.py": PASSING, **modules}.items():
        (folder / name).write_text(source)
    # Not this repository's configuration; asyncio_default_fixture_loop_scope quiets pytest-asyncio.
    (folder / "pytest.ini").write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    env = {**os.environ, "PYTHONPATH": str(REPO / "tests" / "support"),
           "STRICT_SKIPS": "1" if strict else "0"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "strict_skips", "-q", "-p", "no:cacheprovider",
         "--rootdir", str(folder), "-c", str(folder / "pytest.ini"), str(folder)],
        capture_output=True, text=True, env=env, cwd=folder, timeout=120, check=False,
    )


@pytest.mark.parametrize("source", [
    # A module-level importorskip: the whole module skips while it is collected.
    "import pytest\nyaml = pytest.importorskip('no_such_module_here')\n\ndef test_x():\n    pass\n",
    "import pytest\npytest.skip('tools missing', allow_module_level=True)\n",
])
def test_a_collection_time_skip_fails_the_run(tmp_path, source):
    result = run_pytest(tmp_path, {"test_skipping.py": source})
    assert result.returncode == 1, result.stdout
    assert "unexpected skips" in result.stdout and "test_skipping.py" in result.stdout
    assert "1 passed, 1 skipped" in result.stdout


def test_a_run_time_skip_fails_the_run(tmp_path):
    source = "import pytest\n\ndef test_x():\n    pytest.skip('no GPU')\n"
    result = run_pytest(tmp_path, {"test_skipping.py": source})
    assert result.returncode == 1, result.stdout
    assert "test_skipping.py::test_x: Skipped: no GPU" in result.stdout


def test_allowed_skips_of_both_kinds_pass(tmp_path):
    result = run_pytest(tmp_path, {
        "test_module.py": "import pytest\npytest.skip('[allowed] no corpus', allow_module_level=True)\n",
        "test_runtime.py": "import pytest\n\ndef test_x():\n    pytest.skip('[allowed] needs a CUDA GPU')\n",
    })
    assert result.returncode == 0, result.stdout
    assert "unexpected skips" not in result.stdout


def test_without_strict_skips_a_skip_is_only_reported(tmp_path):
    source = "import pytest\nyaml = pytest.importorskip('no_such_module_here')\n"
    result = run_pytest(tmp_path, {"test_skipping.py": source}, strict=False)
    assert result.returncode == 0, result.stdout
