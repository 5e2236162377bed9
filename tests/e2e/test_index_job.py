"""`sensorium index` and `sensorium search` as a user runs them: a mixed folder in, an index out.

The embedding model is the tiny CLIP the tests train (tests/support/tiny_clip.py), Whisper is
the packaged tiny.en; speech comes from espeak-ng. Equality of two indexes is the multiset of
(content hash, kind, page, bbox, time range, text) with vectors at cosine >= 0.9999, whatever
the row order, units and part names.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

import docmaker
import speechkit
import testkit
import tiny_clip
from sensorium.index.layout import Shard
from sensorium.index.reader import IndexReader

SENTENCE = "The weather in Paris is sunny today"
MAIL_BODY = "The barn dance is on Saturday evening"
PLAN = b"Bring lanterns and apple cider to the barn.\n"
PAGE_TWO = "Potatoes and gravy were served at the harvest festival"


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    model = tiny_clip.build()
    return testkit.cli_env(
        SENSORIUM_EMBEDDING__MODEL=f"local-dir:{model}",
        SENSORIUM_EMBEDDING__PRETRAINED="",
        SENSORIUM_TRANSCRIPTION__MODEL="packaged:tiny.en",
        SENSORIUM_PDF__WORKERS="1",
        SENSORIUM_LOG_LEVEL="INFO",
    )


def _shapes(folder: Path, seed: int = 5) -> dict[str, Path]:
    rng = np.random.default_rng(seed)
    paths = {}
    for shape, colour in (("circle", "red"), ("square", "blue"), ("triangle", "yellow")):
        path = folder / f"{colour}-{shape}.png"
        path.write_bytes(tiny_clip.png(tiny_clip.draw(shape, colour, rng)))
        paths[f"{colour} {shape}"] = path
    return paths


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of the issue: every kind, every way a file can fail, a copy, a misnamed PDF."""
    folder = tmp_path_factory.mktemp("mixed")
    text_pdf = testkit.make_pdf(["An introduction to the harvest. " * 6, PAGE_TWO], image_pixels=200)
    (folder / "report.pdf").write_bytes(text_pdf)
    (folder / "scan.pdf").write_bytes(testkit.make_scanned_pdf("INVOICE 4711"))
    (folder / "song.mp3").write_bytes(testkit.make_pdf(["Not a song but a letter about tulips"]))
    speechkit.espeak(SENTENCE, folder / "speech.wav")
    flac = speechkit.encode(speechkit.load(folder / "speech.wav"), folder / "cut.flac", "flac")
    data = flac.read_bytes()
    flac.write_bytes(data[: len(data) // 2])
    shapes = _shapes(folder)
    # The copy's path hashes to the other of two shards than the original's (its name depends
    # on pytest's temporary folder), so the two-shard test always meets a cross-shard duplicate.
    copy = folder / "copy-of-red.png"
    for n in range(100):
        if Shard(0, 2).owns(str(copy)) != Shard(0, 2).owns(str(shapes["red circle"])):
            break
        copy = folder / f"copy-of-red-{n}.png"
    shutil.copy(shapes["red circle"], copy)
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7\n" + os.urandom(300))
    (folder / "notes.txt").write_text("shopping list: milk, eggs")
    (folder / "data.txt").write_bytes(bytes(range(256)) * 16)  # binary under a text name
    mail = docmaker.mail_message("Harvest dance", f"{MAIL_BODY}.", [("plan.txt", "text/plain", PLAN)])
    (folder / "invite.eml").write_bytes(mail.as_bytes())
    return folder


def index(folder: Path | list[Path], out: Path, env: dict[str, str], *extra: str,
          timeout: float = 300) -> subprocess.CompletedProcess[str]:
    paths = [str(p) for p in (folder if isinstance(folder, list) else [folder])]
    return testkit.run_cli("index", *paths, "--out", str(out), *extra, env=env, timeout=timeout)


def search(out: Path, env: dict[str, str], *args: str) -> list[dict[str, Any]]:
    result = testkit.run_cli("search", *args, "--index", str(out), "--json", env=env)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def files(out: Path) -> dict[str, dict[str, Any]]:
    return {row["path"]: row for row in IndexReader(out).files().to_pylist()}


def rows(out: Path) -> list[dict[str, Any]]:
    found = []
    for table in IndexReader(out).live_rows():
        found.extend(table.to_pylist())
    return found


def content(out: Path) -> tuple[Counter[tuple[Any, ...]], dict[tuple[Any, ...], list[np.ndarray]]]:
    """The comparable content of an index (see the module docstring)."""
    keys: Counter[tuple[Any, ...]] = Counter()
    vectors: dict[tuple[Any, ...], list[np.ndarray]] = {}
    for row in rows(out):
        bbox = None if row["bbox"] is None else tuple(round(v, 2) for v in row["bbox"].values())
        key = (row["content_sha256"], row["kind"], row["page"], bbox, row["start_seconds"],
               row["end_seconds"], row["text"])
        keys[key] += 1
        vectors.setdefault(key, []).append(np.asarray(row["vector"], dtype=np.float32))
    return keys, vectors


def assert_same_index(a: Path, b: Path, times: dict[str, int] | None = None) -> None:
    """`b` holds what `a` does; `times[content_sha256]`: `b` holds that content's rows that many
    times (once per shard that indexed a copy of it)."""
    keys_a, vectors_a = content(a)
    keys_b, vectors_b = content(b)
    if times:
        keys_a = Counter({key: count * times.get(key[0], 1) for key, count in keys_a.items()})
        vectors_a = {key: group * times.get(key[0], 1) for key, group in vectors_a.items()}
    assert keys_a == keys_b
    for key, group in vectors_a.items():
        ours = sorted(group, key=lambda v: v.tolist())
        theirs = sorted(vectors_b[key], key=lambda v: v.tolist())
        for va, vb in zip(ours, theirs, strict=True):
            cosine = float(va @ vb / (np.linalg.norm(va) * np.linalg.norm(vb)))
            assert cosine >= 0.9999, key


@pytest.fixture(scope="module")
def built(
    mixed: Path, env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("built") / "index"
    result = index(mixed, out, env, "--json")
    assert result.returncode == 0, result.stderr
    return out, json.loads(result.stdout)


def test_a_mixed_folder_gives_the_right_rows_and_files_table(mixed, built):
    out, summary = built
    table = files(out)
    by_name = {Path(path).name: row for path, row in table.items()}
    assert by_name["report.pdf"]["status"] == "indexed"
    assert by_name["song.mp3"]["status"] == "indexed" and by_name["song.mp3"]["kind"] == "pdf"
    assert by_name["speech.wav"]["status"] == "indexed" and by_name["speech.wav"]["kind"] == "audio"
    assert by_name["broken.pdf"]["status"] == "error" and by_name["broken.pdf"]["reason"] == "PDF_UNREADABLE"
    assert by_name["cut.flac"]["status"] == "error" and by_name["cut.flac"]["reason"] == "AUDIO_TRUNCATED"
    assert not by_name["cut.flac"]["retryable"]
    assert by_name["notes.txt"]["status"] == "indexed" and by_name["notes.txt"]["kind"] == "document"
    assert by_name["data.txt"]["status"] == "skipped" and by_name["data.txt"]["reason"] == "UNSUPPORTED_TYPE"
    assert "binary, not text" in by_name["data.txt"]["message"]
    # A mail's attachment is a file of its own, under the mail's path.
    plan = table[f"{mixed / 'invite.eml'}!/plan.txt"]
    assert (plan["status"], plan["kind"], plan["size"]) == ("indexed", "document", len(PLAN))
    copies = [by_name[name] for name in sorted(by_name) if name.startswith("copy-of-red")]
    copies.append(by_name["red-circle.png"])
    assert sorted(c["status"] for c in copies) == ["duplicate", "indexed"]
    assert all(row["message"] for row in table.values() if row["status"] in ("error", "skipped"))
    # The schema the issue names.
    schema = pq.read_schema(next((out / "shard-0-of-1" / "rows").glob("*.parquet")))
    for column in ("content_sha256", "path", "kind", "page", "bbox", "start_seconds", "end_seconds",
                   "text", "vector", "space"):
        assert column in schema.names
    assert str(schema.field("vector").type).startswith("fixed_size_list")
    found = rows(out)
    kinds = Counter(row["kind"] for row in found)
    assert kinds["image"] == 3  # three shapes; the copy has no rows of its own
    assert kinds["audio"] >= 1 and kinds["pdf_image"] >= 1 and kinds["pdf_text"] >= 3
    assert kinds["document_text"] >= 4  # notes, the mail's headers and body, its attachment
    mail = next(row for row in found if MAIL_BODY in (row["text"] or ""))
    assert (mail["kind"], mail["title"]) == ("document_text", "Harvest dance")
    pages = {row["page"] for row in found if row["kind"] == "pdf_text"}
    assert 1 in pages and 2 in pages and 0 not in pages  # 1-based
    assert all(row["bbox"] is not None for row in found if row["kind"] in ("pdf_text", "pdf_image"))
    scanned = [row for row in found if "4711" in (row["text"] or "")]
    assert scanned and scanned[0]["page"] == 1, "the scanned page is OCR'd into a chunk"
    audio = next(row for row in found if row["kind"] == "audio")
    assert 0 <= audio["start_seconds"] < audio["end_seconds"] <= 4.0
    assert len({row["space"] for row in found}) == 1
    assert summary["files"]["listed"] == len([path for path in table if "!/" not in path])
    assert summary["errors"] == {"PDF_UNREADABLE": 1, "AUDIO_TRUNCATED": 1}
    assert summary["rows"]["total"] == len(found)


def test_search_finds_what_was_put_in(mixed, built, env):
    out, _ = built
    chunk = next(row for row in rows(out) if row["kind"] == "pdf_text" and row["page"] == 2)
    for mode in ("text", "hybrid"):
        hits = search(out, env, chunk["text"], "--mode", mode, "-k", "3", "--chunks")
        assert (hits[0]["path"], hits[0]["page"], hits[0]["text"]) == (chunk["path"], 2, chunk["text"]), mode
        assert "vector" not in hits[0] and "score" in hits[0]
        # One result per file by default: the file, its best place, the matched words highlighted.
        (best, *_) = search(out, env, PAGE_TWO, "--mode", mode)
        assert (best["path"], best["page"]) == (chunk["path"], 2), mode
        assert "Potatoes" in best["snippet"] and best["highlights"]
    red = search(out, env, "a red circle", "--mode", "vector", "--kind", "image", "-k", "2")
    first = Path(red[0]["path"]).name
    assert first == "red-circle.png" or first.startswith("copy-of-red")
    audio = next(row for row in rows(out) if row["kind"] == "audio")
    spoken = search(out, env, audio["text"], "--mode", "text", "-k", "1", "--chunks")
    assert spoken[0]["kind"] == "audio"
    assert spoken[0]["start_seconds"] == audio["start_seconds"]
    assert spoken[0]["end_seconds"] == audio["end_seconds"]
    by_image = search(out, env, "--image", str(mixed / "blue-square.png"))
    assert Path(by_image[0]["path"]).name == "blue-square.png" and by_image[0]["score"] > 0.999
    # The plain output names where a hit is.
    plain = testkit.run_cli("search", PAGE_TWO, "--index", str(out), "-k", "1", env=env)
    assert plain.returncode == 0 and "page 2" in plain.stdout and "Potatoes" in plain.stdout


def test_a_rerun_writes_nothing_and_changes_and_deletions_are_reflected(mixed, env, tmp_path):
    folder = tmp_path / "in"
    shutil.copytree(mixed, folder)
    out = tmp_path / "index"
    assert index(folder, out, env).returncode == 0
    before = _snapshot(out)
    again = index(folder, out, env, "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["files"]["processed"] == 0
    assert _snapshot(out) == before, "a rerun on an unchanged tree writes nothing"
    # Change one file, delete another.
    (folder / "song.mp3").write_bytes(testkit.make_pdf(["A letter about daffodils instead"]))
    (folder / "blue-square.png").unlink()
    changed = index(folder, out, env, "--json")
    summary = json.loads(changed.stdout)
    assert summary["files"]["processed"] == 1 and summary["files"]["removed"] == 1
    texts = [row["text"] for row in rows(out) if row["path"].endswith("song.mp3")]
    assert texts and all("daffodils" in t for t in texts)
    assert not any(row["path"].endswith("blue-square.png") for row in rows(out))
    assert not search(out, env, "tulips", "--mode", "text")
    assert not any(h["path"].endswith("blue-square.png") for h in search(out, env, "--image",
                                                                          str(mixed / "blue-square.png")))


def _snapshot(out: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(out)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(out.rglob("*")) if p.is_file() and ".search" not in p.parts}


def test_killed_at_any_point_and_rerun_gives_the_same_index(mixed, built, env, tmp_path):
    reference, _ = built
    folder = tmp_path / "in"
    shutil.copytree(mixed, folder)
    # The reference index was made from `mixed`; paths differ, content does not.
    out = tmp_path / "index"
    quick = {**env, "SENSORIUM_INDEX__COMMIT_SECONDS": "0.01", "SENSORIUM_INDEX__ROWS_PER_PART": "7"}
    killed_before_the_end = 0
    for delay in (0.0, 1.5, 3.0, 5.0):
        process = subprocess.Popen([*testkit.SENSORIUM, "index", str(folder), "--out", str(out)],
                                   env=quick, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert process.stderr is not None
        for line in process.stderr:
            if "index plan" in line:
                break
        time.sleep(delay)
        if process.poll() is None:
            killed_before_the_end += 1
        process.send_signal(signal.SIGKILL)
        process.wait()
        # A kill never leaves a half-written part: every part a reader sees is whole.
        for part in out.rglob("*.parquet"):
            pq.read_metadata(part)
    assert killed_before_the_end >= 1
    final = index(folder, out, env)
    assert final.returncode == 0, final.stderr
    assert_same_index(reference, out)


def test_two_shards_cover_what_one_run_does(mixed, built, env, tmp_path):
    reference, _ = built
    out = tmp_path / "index"
    for shard in ("0/2", "1/2"):
        result = index(mixed, out, env, "--shard", shard)
        assert result.returncode == 0, result.stderr
    shards = sorted(p.name for p in out.iterdir() if p.name.startswith("shard"))
    assert shards == ["shard-0-of-2", "shard-1-of-2"]
    # Identical content is embedded once *per shard* (shards do not coordinate): the red circle
    # and its copy fall in different shards (see `mixed`), so each shard embeds it.
    owners: dict[str, set[int]] = {}
    for path, row in files(reference).items():
        if row["status"] in ("indexed", "duplicate"):
            owners.setdefault(row["content_sha256"], set()).add(
                next(i for i in range(2) if Shard(i, 2).owns(path)))
    indexed = Counter(row["content_sha256"] for row in files(out).values() if row["status"] == "indexed")
    assert indexed == {sha: len(owning) for sha, owning in owners.items()}
    assert 2 in indexed.values()  # the copy of the red circle is embedded by both shards
    assert_same_index(reference, out, times={sha: len(owning) for sha, owning in owners.items()})
    # The same command as an Indexed Job pod: the shard from JOB_COMPLETION_INDEX.
    pod = {**env, "SENSORIUM_INDEX__SHARD_COUNT": "2", "JOB_COMPLETION_INDEX": "1"}
    again = index(mixed, out, pod, "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["shard"] == "1/2"
    assert json.loads(again.stdout)["files"]["processed"] == 0


def test_through_a_server_gives_the_same_index(mixed, built, env, tmp_path):
    reference, _ = built
    out = tmp_path / "index"
    services = "pdf,transcription,embedding,document,media"
    with testkit.serve(env={**env, "SENSORIUM_SERVICES": services}) as server:
        result = index(mixed, out, env, "--server", server.target, "--json")
    assert result.returncode == 0, result.stderr
    assert_same_index(reference, out)
    statuses = {Path(p).name: r["status"] for p, r in files(out).items()}
    assert statuses["broken.pdf"] == "error" and statuses["data.txt"] == "skipped"
    assert files(out)[f"{mixed / 'invite.eml'}!/plan.txt"]["status"] == "indexed"


def test_an_unreachable_server_fails_the_job_without_error_rows(mixed, env, tmp_path):
    out = tmp_path / "index"
    result = index(mixed, out, env, "--server", "127.0.0.1:1", "--timeout", "5")
    assert result.returncode == 5, result.stderr
    assert "127.0.0.1:1" in result.stderr and "Traceback" not in result.stderr
    assert not list(out.rglob("*.parquet"))


def test_bad_configuration_and_unusable_output_have_their_own_exit_codes(built, mixed, env, tmp_path):
    reference, _ = built
    other = tmp_path / "other-model"
    model = tiny_clip.build(other, steps=20, seed=1)
    another = {**env, "SENSORIUM_EMBEDDING__MODEL": f"local-dir:{model}"}
    copy = tmp_path / "copy"
    shutil.copytree(reference, copy)
    refused = index(mixed, copy, another)
    assert refused.returncode == 3, refused.stderr
    assert "model" in refused.stderr and "new folder" in refused.stderr
    assert _snapshot(copy) == _snapshot(reference)
    search_refused = testkit.run_cli("search", "a red circle", "--index", str(copy), env=another)
    assert search_refused.returncode == 3 and "built with" in search_refused.stderr
    missing = index(tmp_path / "no-such-folder", tmp_path / "x", env)
    assert missing.returncode == 3 and "no such file or folder" in missing.stderr
    not_an_index = tmp_path / "stuff"
    not_an_index.mkdir()
    (not_an_index / "precious.txt").write_text("keep me")
    unusable = index(mixed, not_an_index, env)
    assert unusable.returncode == 4, unusable.stderr
    assert (not_an_index / "precious.txt").read_text() == "keep me"
    assert index([], tmp_path / "y", env).returncode == 2


def test_help_explains_the_exit_codes_and_settings():
    result = testkit.run_cli("index", "--help", env=testkit.cli_env())
    assert result.returncode == 0
    for words in ("--shard", "JOB_COMPLETION_INDEX", "--manifest", "exit status", "SENSORIUM_"):
        assert words in result.stdout


def test_memory_stays_bounded_however_many_files(env, tmp_path):
    """Peak RSS indexing 10,000 small files is within 10 % of indexing 1,000."""
    peaks = {}
    for count in (1000, 10_000):
        folder = tmp_path / f"in-{count}"
        folder.mkdir()
        rng = np.random.default_rng(count)
        shapes = [tiny_clip.png(tiny_clip.draw(s, c, rng)) for s, c in tiny_clip.CLASSES]
        for i in range(count):
            # Distinct content (no duplicates to short-cut): a shape plus a unique trailer.
            (folder / f"{i:05d}.png").write_bytes(shapes[i % len(shapes)] + i.to_bytes(4, "big"))
        probe = ("import resource, subprocess, sys; "
                 "code = subprocess.run(sys.argv[1:]).returncode; "
                 "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code)")
        result = subprocess.run(
            [sys.executable, "-c", probe, *testkit.SENSORIUM, "index", str(folder), "--out",
             str(tmp_path / f"out-{count}"), "--json"],
            env={**env, "SENSORIUM_LOG_LEVEL": "WARNING"}, capture_output=True, text=True, timeout=900)
        lines = result.stdout.splitlines()
        peak_kib, code = lines[-1].split()
        assert code == "0", result.stderr
        assert json.loads(lines[0])["files"]["by_status"]["indexed"] == count
        peaks[count] = int(peak_kib)
    print("peak RSS KiB by file count:", peaks)
    assert peaks[10_000] <= peaks[1000] * 1.10, peaks
