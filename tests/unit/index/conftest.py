from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def src(tmp_path: Path) -> Path:
    """An empty input folder."""
    folder = tmp_path / "src"
    folder.mkdir()
    return folder
