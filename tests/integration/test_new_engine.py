"""A new engine walks in through the public extension points alone (tests/support/toy_engine.py:
one registry row, one kind-table row, no change to services/): the CLI gains its command, the
server hosts it, the index job recognises its files by their magic header and indexes them with
a row kind of their own, and search finds them by that kind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import testkit
import tiny_clip
import toy_engine
from sensorium.cli import main
from sensorium.client import Client
from sensorium.index.reader import IndexReader
from sensorium.settings import Settings

pytestmark = pytest.mark.weights

CARDS = (toy_engine.MAGIC + b"to: Ada\nfrom: Charles\nThe difference engine needs no steam today\n---\n"
         b"to: Charles\nfrom: Ada\nPlease bring the punched cards for the loom\n")


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    toy_engine.register()
    model = tiny_clip.build()
    monkeypatch.setenv("SENSORIUM_EMBEDDING__MODEL", f"local-dir:{model}")
    monkeypatch.setenv("SENSORIUM_EMBEDDING__PRETRAINED", "")
    monkeypatch.setenv("SENSORIUM_DEVICE", "cpu")
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "letters.txt").write_bytes(CARDS)  # a misleading name: the content decides
    (folder / "plain.txt").write_bytes(b"just a note, not a postcard\n")  # a document: plain text
    (folder / "blob.dat").write_bytes(bytes(range(256)) * 4)  # no kind reads it
    yield folder
    toy_engine.unregister()


def test_the_cli_gains_the_engines_command(toy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["postcards", str(toy / "letters.txt")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["#1 from Charles to Ada: The difference engine needs no steam today",
                     "#2 from Ada to Charles: Please bring the punched cards for the loom"]


def test_the_index_job_and_search_use_the_new_kind(toy: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "index"
    assert main(["index", str(toy), "--out", str(out), "--json"]) == 0
    printed = capsys.readouterr()
    summary = json.loads(printed.out)
    assert summary["rows"]["total"] == 3, printed.err  # the job's log says why a row is missing
    assert summary["files"]["by_kind"] == {"postcard": 1, "document": 1}
    assert summary["rows"]["by_kind"] == {"postcard": 2, "document_text": 1}
    files = {Path(r["path"]).name: r for r in IndexReader(out).files().to_pylist()}
    assert files["letters.txt"]["kind"] == "postcard" and files["letters.txt"]["status"] == "indexed"
    assert files["plain.txt"]["kind"] == "document"  # its check comes first: documents are the fallback
    assert files["blob.dat"]["reason"] == "UNSUPPORTED_TYPE"
    assert "postcards" in files["blob.dat"]["message"]  # the kinds the job reads, the new one included

    assert main(["search", "--index", str(out), "punched cards", "--mode", "text", "--kind", "postcard",
                 "--json"]) == 0
    hits = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert hits[0]["kind"] == "postcard" and hits[0]["page"] == 2
    assert "punched cards" in hits[0]["snippet"].lower()


async def test_the_server_hosts_the_new_engine(toy: Path, start_server) -> None:
    server = await start_server(services=["toy"])
    async with Client(f"127.0.0.1:{server.port}") as client:
        assert await client.health("toy") == "SERVING"
        assert await client.health() == "SERVING"


def test_settings_name_the_new_service_once_it_is_registered(toy: Path) -> None:
    assert Settings(services=["toy", "pdf"]).services == ["toy", "pdf"]
    toy_engine.unregister()
    with pytest.raises(ValueError, match="unknown service toy"):
        Settings(services=["toy"])
    toy_engine.register()  # for the fixture's own unregister


def test_the_engine_lives_outside_the_package() -> None:
    services = testkit.REPO / "services" / "sensorium"
    assert not any("toy_engine" in path.read_text() or "postcard" in path.read_text()
                   for path in services.rglob("*.py"))
