"""The optional real-world corpus: the one place that knows where it is.

Files nobody on this project wrote (PDFs, audio, images from public test suites) live outside
the repository, at `CORPUS_DIR` (default: `shared/corpus` beside the checkout's folder). Tests
reach them only through the `corpus_dir` fixture (tests/conftest.py), which skips with an
allowed reason when the folder is absent and marks the test `corpus`; benchmarks call
`corpus_file()`. Everything the corpus checks has a repository-local twin, so a clone alone
still tests it all; the corpus is a larger sweep on top (CI runs it with `-m corpus`).
A test (tests/unit/test_repository.py) fails if any other test or benchmark names the folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
ENV = "CORPUS_DIR"
REQUIRED_ENV = "CORPUS_REQUIRED"
"""Set to 1 (CI's corpus run) to make a missing corpus an error instead of a skip."""
# Not SENSORIUM_*: the settings object rejects unknown SENSORIUM_ variables.
DEFAULT = REPO.parent / "shared" / "corpus"
MARKER = "corpus"


def corpus_dir() -> Path:
    """Where the corpus is looked for (it may not be there)."""
    configured = os.environ.get(ENV)
    return Path(configured) if configured else DEFAULT


def available() -> bool:
    return (corpus_dir() / "manifest.json").is_file()


def required() -> bool:
    return os.environ.get(REQUIRED_ENV) == "1"


def skip_reason() -> str:
    """Why corpus tests skip: allowed under STRICT_SKIPS (repository-local tests cover the same
    ground), and saying how to run them."""
    return f"[allowed] real-world corpus not found at {corpus_dir()} (set {ENV} to run the corpus sweep)"


def manifest(kind: str | None = None) -> list[dict[str, Any]]:
    """The manifest's entries (of one `kind`: "pdf", "audio", "image"); [] without the corpus."""
    if not available():
        return []
    files: list[dict[str, Any]] = json.loads((corpus_dir() / "manifest.json").read_text())["files"]
    return [f for f in files if kind is None or f["kind"] == kind]


def corpus_file(relative: str) -> Path | None:
    """`relative` (e.g. "pdf/qpdf_bad1.pdf") inside the corpus, or None when it is not there."""
    path = corpus_dir() / relative
    return path if path.is_file() else None


def corpus_folder(relative: str) -> Path | None:
    """`relative` (e.g. "pdf") inside the corpus as a folder, or None when it is not there."""
    path = corpus_dir() / relative
    return path if path.is_dir() else None
