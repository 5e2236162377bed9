"""Generated documents, made once per test session (LibreOffice and pandoc take ~30 s)."""

from __future__ import annotations

from pathlib import Path

import pytest

import docmaker


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, docmaker.Expected]]:
    missing = docmaker.tools_missing()
    if missing:
        # Not "[allowed]": scripts/setup installs both, so a CI run without them must fail.
        pytest.skip(f"{', '.join(missing)} not installed (scripts/setup installs pandoc and LibreOffice)")
    folder = tmp_path_factory.mktemp("documents")
    return folder, docmaker.make_documents(folder)


@pytest.fixture(scope="session")
def hostile(generated: tuple[Path, dict[str, docmaker.Expected]],
            tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    folder = tmp_path_factory.mktemp("hostile")
    return folder, docmaker.make_hostile(folder, generated[0])
