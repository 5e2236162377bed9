"""Packaging promises: a PDF-only install pulls no torch, and the PDF server never imports it."""

from __future__ import annotations

import subprocess
import sys
import tomllib

from testkit import REPO


def test_pdf_extra_and_core_dependencies_pull_no_torch():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    core_and_pdf = project["dependencies"] + project["optional-dependencies"]["pdf"]
    heavy = ("torch", "open-clip", "faster-whisper", "ctranslate2", "av")
    assert not [d for d in core_and_pdf if d.lower().startswith(heavy)]


def test_a_pdf_server_imports_no_model_libraries():
    code = (
        "import sys, sensorium.cli, sensorium.server, sensorium.pdf.servicer, sensorium.client;"
        "heavy = [m for m in ('torch', 'open_clip', 'faster_whisper', 'ctranslate2', 'av')"
        " if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
