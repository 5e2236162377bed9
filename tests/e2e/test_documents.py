"""Documents as a user meets them: `sensorium index` over every format (made by pandoc,
LibreOffice, Python's email and Aspose.Email FOSS: tests/support/docmaker.py), `sensorium search
--mode text` finding each file by the words only it holds, hostile files each with their reason
while the job goes on, legacy Office without LibreOffice skipped with the fix and indexed once
it is there, and `sensorium doc`.

The embedding model is the tests' tiny CLIP (tests/support/tiny_clip.py).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

import docmaker
import testkit
import tiny_clip
from sensorium.index.reader import IndexReader
from sensorium.index.search import Filters, SearchStore

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    model = tiny_clip.build()
    return testkit.cli_env(
        SENSORIUM_EMBEDDING__MODEL=f"local-dir:{model}", SENSORIUM_EMBEDDING__PRETRAINED="",
        SENSORIUM_DOCUMENT__WORKERS="2",
    )


def index(folder: Path, out: Path, env: dict[str, str], *extra: str) -> dict[str, Any]:
    result = testkit.run_cli("index", str(folder), "--out", str(out), "--json", *extra, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def files(out: Path) -> dict[str, dict[str, Any]]:
    return {row["path"]: row for row in IndexReader(out).files().to_pylist()}


def rows(out: Path) -> list[dict[str, Any]]:
    return [row for table in IndexReader(out).live_rows() for row in table.to_pylist()]


def search(out: Path, env: dict[str, str], *args: str) -> list[dict[str, Any]]:
    result = testkit.run_cli("search", *args, "--index", str(out), "--json", env=env)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.fixture(scope="module")
def built(generated, env, tmp_path_factory) -> tuple[Path, Path, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("documents-in")
    for path in generated[0].iterdir():
        shutil.copy(path, folder / path.name)
    out = tmp_path_factory.mktemp("documents-index") / "index"
    return folder, out, index(folder, out, env)


def test_every_format_is_indexed_with_its_locators(generated, built):
    folder, out, summary = built
    expected = generated[1]
    table = files(out)
    for name in expected:
        entry = table[str(folder / name)]
        assert (entry["status"], entry["kind"]) == ("indexed", "document"), (name, entry["message"])
    assert summary["errors"] == {"PROCESSING_LIMIT": 1}  # forward.eml's mail's attachment: too deep
    found = rows(out)
    by_path: dict[str, list[dict[str, Any]]] = {}
    for row in found:
        by_path.setdefault(row["path"], []).append(row)
    for name in expected:
        assert any(row["kind"] == "document_text" for row in by_path[str(folder / name)]), name

    def row_with(name: str, phrase: str) -> dict[str, Any]:
        return next(row for row in by_path[str(folder / name)] if phrase in " ".join(row["text"].split()))

    tides = row_with("report.docx", "Spring tides flooded")
    assert (tides["section"], tides["title"], tides["author"]) == (
        "Introduction > Tides and currents", docmaker.TITLE, docmaker.AUTHOR)
    cargo = row_with("slides.pptx", "Osprey")
    assert (cargo["page"], cargo["section"]) == (3, "Cargo volumes")
    crane = row_with("budget.xlsx", "Crane repair")
    assert (crane["section"], crane["cells"], crane["title"]) == ("Budget", "A1:C3", docmaker.SHEET_TITLE)
    cue = row_with("talk.vtt", "crane lifts forty tonnes")
    assert cue["start_seconds"] <= 62.5 and cue["end_seconds"] >= 65.0
    assert row_with("notes.txt", "anchor chain grease")["section"] == "line 1"
    legacy = row_with("report.doc", "barnacle census")
    assert legacy["section"] == "Introduction" and legacy["title"] == docmaker.TITLE
    pictures = [row for row in by_path[str(folder / "report.docx")] if row["kind"] == "document_image"]
    assert len(pictures) == 1 and pictures[0]["section"] == "Introduction > Tides and currents"
    # Each section is a passage (what text search ranks), with its locator; rows point to theirs.
    passages = {(p["path"], p["ordinal"]): p for t in IndexReader(out).live_passages() for p in t.to_pylist()}
    tides_passage = passages[tides["path"], tides["passage"]]
    assert tides_passage["section"] == "Introduction > Tides and currents"
    assert "Spring tides flooded" in " ".join(tides_passage["text"].split())
    assert pictures[0]["passage"] == tides["passage"]
    assert passages[cargo["path"], cargo["passage"]]["page"] == 3
    assert passages[cue["path"], cue["passage"]]["start_seconds"] <= cue["start_seconds"]


def test_attachments_are_files_of_their_own(built):
    folder, out, _ = built
    table = files(out)
    docx = table[f"{folder / 'dues.eml'}!/report.docx"]
    assert docx["status"] == "indexed" and docx["content_sha256"] == table[str(folder / "report.docx")][
        "content_sha256"]
    assert table[f"{folder / 'dues.eml'}!/notes.txt"]["status"] == "indexed"
    assert table[f"{folder / 'roster.msg'}!/roster.txt"]["status"] == "indexed"
    inner = f"{folder / 'forward.eml'}!/Forwarded: crane schedule.eml"
    assert table[inner]["status"] == "indexed"
    deep = table[f"{inner}!/schedule.txt"]
    assert (deep["status"], deep["reason"]) == ("error", "PROCESSING_LIMIT")
    assert "one level deep" in deep["message"]
    # A rerun over the same folder redoes nothing and keeps every attachment.
    assert IndexReader(out).files().num_rows == len(table)


def test_a_phrase_from_each_file_finds_that_file_first(generated, built, env):
    """`sensorium search --mode text` (which ranks passages: a document's sections) for the words
    only one file holds ranks that file first, with where in it. The command for a few files;
    for every file, the store it prints from (starting the CLI 28 times would take minutes on a
    busy machine, for the same code)."""
    folder, out, _ = built
    table = files(out)
    expected = generated[1]

    def check(name: str, results: list[dict[str, Any]]) -> dict[str, Any]:
        assert results, name
        best = results[0]
        # A mail's attachment is the same file again (dues.eml carries report.docx): either copy,
        # the other listed in `files` (one passage found in several files is one result).
        assert table[best["path"]]["content_sha256"] == table[str(folder / name)]["content_sha256"], (
            name, [r["path"] for r in results])
        assert str(folder / name) in [best["path"], *best["files"]], name
        assert docmaker.marker_sentence(expected[name].marker) in best["snippet"], name
        return best

    for name in ("report.docx", "budget.xls", "talk.srt"):
        check(name, search(out, env, expected[name].marker, "--mode", "text", "--kind", "document_text",
                           "-k", "3"))
    store = SearchStore(out)
    for name, want in expected.items():
        results = store.search_files(query_text=want.marker, mode="text", k=3,
                                     filters=Filters(kinds=["document_text"]))
        best = check(name, [result.to_json() for result in results])
        if name == "budget.xlsx":  # a spreadsheet's place: its sheet (the marker is on "Notes"), cells, title
            assert (best["section"], best["title"]) == ("Notes", docmaker.SHEET_TITLE), best
            assert best["cells"].startswith("A") and ":" in best["cells"], best
    plain = testkit.run_cli("search", expected["slides.pptx"].marker, "--mode", "text", "-k", "1",
                            "--index", str(out), env=env)
    assert plain.returncode == 0 and "slides.pptx  page 2 Harbour overview" in plain.stdout, plain.stdout


def test_a_rerun_redoes_nothing(built, env):
    folder, out, _ = built
    before = files(out)
    summary = index(folder, out, env)
    assert summary["files"]["processed"] == 0 and summary["files"]["removed"] == 0
    assert files(out) == before


def test_hostile_files_each_give_their_reason_and_the_job_goes_on(hostile, env, tmp_path):
    folder, expected = hostile
    (folder / "plain.txt").write_text("An honest file among hostile ones.\n")
    out = tmp_path / "index"
    index(folder, out, env)
    table = files(out)
    outcome = {Path(path).name: (row["status"], row["reason"]) for path, row in table.items()}
    for name, reason in expected.items():
        if reason == "UNSUPPORTED_TYPE":
            assert outcome[name] == ("skipped", reason), name
        elif reason:
            assert outcome[name] == ("error", reason), name
        else:
            assert outcome[name] == ("indexed", None), name
    assert outcome["plain.txt"] == ("indexed", None)
    assert outcome["Middle mail.eml"] == ("indexed", None)  # nested.eml's attachment
    assert outcome["Innermost.eml"] == ("error", "PROCESSING_LIMIT")
    assert all(row["message"] for row in table.values() if row["status"] != "indexed")
    spans = [row for row in rows(out) if row["path"].endswith("spans.html")]
    assert 0 < sum(len(row["text"]) for row in spans) < 40_000


def test_legacy_office_is_skipped_without_libreoffice_and_indexed_once_it_is_there(generated, env, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(generated[0] / "report.doc", folder / "report.doc")
    out = tmp_path / "index"
    index(folder, out, {**env, "SENSORIUM_DOCUMENT__SOFFICE": str(tmp_path / "no-soffice")})
    entry = files(out)[str(folder / "report.doc")]
    assert (entry["status"], entry["reason"], entry["retryable"]) == ("skipped", "UNSUPPORTED_TYPE", True)
    assert "apt-get install libreoffice-writer-nogui" in entry["message"]
    assert "SENSORIUM_DOCUMENT__SOFFICE" in entry["message"]
    summary = index(folder, out, env)
    assert summary["files"]["processed"] == 1
    assert files(out)[str(folder / "report.doc")]["status"] == "indexed"


def test_doc_prints_the_text_with_where_each_part_is(generated, env):
    folder = generated[0]
    result = testkit.run_cli("doc", str(folder / "report.docx"), env=env)
    assert result.returncode == 0, result.stderr
    assert f"title: {docmaker.TITLE}" in result.stdout
    block = result.stdout.split("[Introduction > Tides and currents]\n", 1)[1]
    assert block.startswith("Spring tides flooded the eastern quay")
    as_json = json.loads(testkit.run_cli("doc", str(folder / "budget.xlsx"), "--json", env=env).stdout)
    crane = next(s for s in as_json["sections"] if "Crane repair" in s["text"])
    assert crane["locator"]["description"] == 'sheet "Budget" A1:C3'
    assert as_json["metadata"]["format"] == "DOCUMENT_FORMAT_XLSX"
    refused = testkit.run_cli("doc", str(folder / "report.docx") + ".missing", env=env)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr


def test_doc_writes_a_mails_attachments(generated, env, tmp_path):
    result = testkit.run_cli("doc", str(generated[0] / "dues.eml"), "--attachments", str(tmp_path), env=env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "report.docx").read_bytes() == (generated[0] / "report.docx").read_bytes()
    assert (tmp_path / "notes.txt").read_bytes() == b"Bring the tide tables.\n"
