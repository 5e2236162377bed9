"""Fixtures shared by every test: clean environment, in-process servers, the optional corpus."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

import corpus
import docmaker
import testkit
from sensorium.hosting import HostedService
from sensorium.runtimes import Runtimes
from sensorium.server import Server

# STRICT_SKIPS=1 (scripts/test, CI) fails a run with a skip whose reason is not "[allowed]".
pytest_plugins = ["strict_skips"]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SENSORIUM_* variable of the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.upper().startswith("SENSORIUM_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SENSORIUM_MODEL_DIR for every test that only reads packaged Whisper models.

    Assembled once per run (tiny.en 75 MB, base 142 MB): a copy per module filled CI's disk.
    Tests that tamper with an assembled model define their own `model_dir`.
    """
    return tmp_path_factory.mktemp("models")


StartServer = Callable[..., Any]


@pytest.fixture
async def start_server() -> AsyncIterator[StartServer]:
    """`await start_server(hosted=[...], **settings)` -> a running Server on 127.0.0.1:0.
    Without `hosted`, the server runs the runtimes of the services named by the `services`
    setting; `factories` replaces some of their runtime factories (see `Runtimes`)."""
    servers: list[Server] = []

    async def start(
        hosted: Sequence[HostedService] | None = None, factories: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> Server:
        settings = testkit.test_settings(**overrides)
        runtimes = None if hosted is not None else Runtimes(settings, factories=factories)
        server = Server(settings, services=hosted, runtimes=runtimes)
        servers.append(server)
        await server.start()
        return server

    yield start
    for server in servers:
        if not server._stopped.is_set():
            await server._stop_everything(grace=0)


# --- generated documents (tests/support/docmaker.py) -------------------------------------------


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, docmaker.Expected]]:
    """Every document format, written by other programs than the engine reads them with
    (pandoc, LibreOffice, Python's email, Aspose.Email FOSS), with what each must yield. Made
    once per test run (~30 s: LibreOffice starts once per target format)."""
    missing = docmaker.tools_missing()
    if missing:
        # Not "[allowed]": scripts/setup installs both, so a CI run without them must fail.
        pytest.skip(f"{', '.join(missing)} not installed (scripts/setup installs pandoc and LibreOffice)")
    folder = tmp_path_factory.mktemp("documents")
    return folder, docmaker.make_documents(folder)


@pytest.fixture(scope="session")
def hostile(generated: tuple[Path, dict[str, docmaker.Expected]],
            tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """Hostile documents (zip bomb, billion laughs, span bomb, binary .txt, truncated .pptx,
    encrypted .docx, nested mail), with the reason each must give."""
    folder = tmp_path_factory.mktemp("hostile")
    return folder, docmaker.make_hostile(folder, generated[0])


# --- the optional real-world corpus (tests/support/corpus.py) ----------------------------------

CORPUS_FIXTURES = {"corpus_dir", "corpus_pdf", "corpus_image"}
"""A test naming one of these reads the corpus: it is marked `corpus` and skips (allowed) when
the corpus is absent."""


def pytest_configure(config: pytest.Config) -> None:
    if corpus.required() and not corpus.available():
        raise pytest.UsageError(
            f"{corpus.REQUIRED_ENV}=1 but the real-world corpus is not at {corpus.corpus_dir()} "
            f"(no manifest.json); set {corpus.ENV}"
        )


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The real-world corpus folder; the test skips, with an allowed reason, where it is absent."""
    if not corpus.available():
        pytest.skip(corpus.skip_reason())
    return corpus.corpus_dir()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`corpus_pdf` / `corpus_image` parametrize a test over the manifest's entries of that kind."""
    for name, kind in (("corpus_pdf", "pdf"), ("corpus_image", "image")):
        if name in metafunc.fixturenames:
            entries = corpus.manifest(kind)
            if entries:
                metafunc.parametrize(name, entries, ids=[Path(f["file"]).stem for f in entries])
            else:
                skip = pytest.mark.skip(reason=corpus.skip_reason())
                metafunc.parametrize(name, [pytest.param(None, marks=skip)], ids=["no-corpus"])


@pytest.hookimpl(tryfirst=True)  # before `-m` selects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if CORPUS_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(corpus.MARKER)
