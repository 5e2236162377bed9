"""The repository stands alone: tests and benchmarks reach the optional corpus only through its
one helper (tests/support/corpus.py), and the data files kept in tests/data are the ones its
README lists, with those checksums."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest

import corpus
from testkit import DATA, REPO

HELPER = REPO / "tests" / "support" / "corpus.py"
# `../shared`, `shared/corpus`, `"shared" / "corpus"`, `"shared", "corpus"`: ways to name the
# corpus folder other than through the helper.
DIRECT = re.compile(r"""\.\./shared\b|\bshared\s*/\s*corpus\b|["']shared["']\s*[/,]\s*["']corpus["']""")
# Reading the variable the helper is driven by (os.environ.get("CORPUS_DIR"), os.getenv(...)).
CONFIGURED = re.compile(r"""(?:environ|getenv)[.\w\[( ]*["']CORPUS_DIR["']""")


def _sources() -> list[Path]:
    files = [*REPO.glob("tests/**/*.py"), *REPO.glob("bench/**/*.py"), *REPO.glob("bench/**/*.sh")]
    return sorted(f for f in files if f != HELPER and f != Path(__file__).resolve())


def offences(text: str) -> list[str]:
    """Lines of `text` that name the corpus folder or its variable directly."""
    return [line.strip() for line in text.splitlines() if DIRECT.search(line) or CONFIGURED.search(line)]


@pytest.mark.parametrize("line", [
    'CORPUS = REPO.parent / "shared" / "corpus"',
    "path = Path('../shared/corpus/pdf/x.pdf')",
    'os.path.join(root, "shared", "corpus")',
    'folder = os.environ.get("CORPUS_DIR")',
    "folder = os.environ['CORPUS_DIR']",
    'folder = os.getenv("CORPUS_DIR", "..")',
    "see /work/shared/corpus/manifest.json",
])
def test_the_check_catches_direct_names(line):
    assert offences(line) == [line]


def test_the_check_lets_ordinary_text_through():
    text = '"""Fixtures shared by every test (CORPUS_DIR: see corpus.py)."""\nfolder = corpus.corpus_dir()'
    assert offences(text) == []


def test_no_test_or_benchmark_names_the_corpus_folder_directly():
    found = {str(path.relative_to(REPO)): lines for path in _sources()
             if (lines := offences(path.read_text(encoding="utf-8")))}
    assert found == {}, "read the corpus through the `corpus_dir` fixture or tests/support/corpus.py"


def test_the_helper_knows_the_default_and_the_variable():
    assert REPO.parent / "shared" / "corpus" == corpus.DEFAULT
    assert offences(HELPER.read_text(encoding="utf-8"))  # the one place allowed to name them


def _listed() -> dict[str, str]:
    """File name -> sha256, from the table in tests/data/README.md."""
    rows = re.findall(r"^\| `([^`]+)` \|.*\| `([0-9a-f]{64})` \|$", (DATA / "README.md").read_text(), re.M)
    return dict(rows)


def test_every_data_file_is_listed_with_its_checksum():
    present = {p.name for p in DATA.iterdir() if p.name != "README.md"}
    listed = _listed()
    assert set(listed) == present
    for name, digest in listed.items():
        assert hashlib.sha256((DATA / name).read_bytes()).hexdigest() == digest, name


def test_data_files_stay_small():
    sizes = {p.name: p.stat().st_size for p in DATA.iterdir()}
    assert sum(sizes.values()) < 2 * 1024 * 1024, sizes


def test_no_tracked_file_is_a_link_out_of_the_repository():
    """A clone must stand alone: a committed link to a path on the author's machine (a `.venv`
    linked to another checkout once slipped in) breaks it or, worse, works only there."""
    import subprocess

    listed = subprocess.run(["git", "ls-files", "-s"], cwd=REPO, capture_output=True, text=True,
                            check=False)
    if listed.returncode != 0:
        pytest.skip("[allowed] not a git checkout (e.g. an sdist)")
    links = [line.split("\t", 1)[1] for line in listed.stdout.splitlines() if line.startswith("120000")]
    outside = []
    for path in links:
        # Read the target, not the file system: such a link may point at itself in the author's
        # checkout and only escape in a clone.
        target = os.readlink(REPO / path)
        inside = os.path.normpath(os.path.join(os.path.dirname(path), target))
        if os.path.isabs(target) or inside == ".." or inside.startswith("../"):
            outside.append(f"{path} -> {target}")
    assert not outside, f"links out of the repository: {outside}"
