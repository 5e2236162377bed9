"""Photos, screenshots and videos as a person indexes and searches them (issue 19), with the
`sensorium` command in subprocesses: text in images becomes `image_text` rows found by
`sensorium search --mode text`; ordinary photos give none; HEIC photos and EXIF dates and
orientations are read; videos give a frame per scene with its time and their sound track's
transcript; damaged videos are error rows and the job goes on. `sensorium ocr` and `sensorium
frames` print the same in-process and through a server.

Every input is made here (tests/support/mediakit.py, speechkit.py); the embedding model is the
tiny CLIP the tests train, Whisper the packaged tiny.en.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import mediakit
import speechkit
import testkit
import tiny_clip
from sensorium.index.reader import IndexReader
from sensorium.photos import register_heif

# Screenshots of several fonts, sizes and dark mode; each with a phrase of its own to search.
SCREENSHOTS = {
    "error.png": ("DejaVuSans.ttf", 14, False,
                  ["Error: connection refused while contacting the payment server",
                   "Retry in 30 seconds or check the proxy settings"], "payment server refused"),
    "traceback.png": ("DejaVuSansMono.ttf", 13, True,
                      ["Traceback (most recent call last): File main.py, line 42",
                       "KeyError: customer_id missing in the order handler"], "customer_id order handler"),
    "invoice.png": ("DejaVuSerif.ttf", 16, False,
                    ["Your invoice number 20418 is due on Friday, March 14",
                     "Pay online with the reference ACME 7731"], "invoice 20418"),
    "settings.png": ("DejaVuSansCondensed.ttf", 12, False,
                     ["Settings  Network  Bluetooth  Display  Sound",
                      "Wi-Fi is connected to Harbour Guest"], "Harbour Guest"),
    "battery.png": ("DejaVuSans-Bold.ttf", 20, True,
                    ["Battery low: connect your charger", "within the next ten minutes"], "battery charger"),
    "whiteboard.png": ("pillow", 15, False,
                       ["Whiteboard: migrate database, update client",
                        "write release notes before Thursday"], "release notes Thursday"),
}
SCENES = [0.0, 4.0, 8.5]
SPOKEN = "The weather in Paris is sunny today"


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    model = tiny_clip.build()
    return testkit.cli_env(
        SENSORIUM_EMBEDDING__MODEL=f"local-dir:{model}", SENSORIUM_EMBEDDING__PRETRAINED="",
        SENSORIUM_TRANSCRIPTION__MODEL="packaged:tiny.en", SENSORIUM_PDF__WORKERS="1",
        SENSORIUM_MEDIA__WORKERS="2", SENSORIUM_MEDIA__FRAME_INTERVAL_SECONDS="30",
    )


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("media")
    for name, (font, size, dark, lines, _) in SCREENSHOTS.items():
        mediakit.screenshot(lines, font_name=font, size=size, dark=dark).image.save(folder / name)
    # A phone photo of a printed notice: perspective, blur, noise; JPEG with a camera in EXIF.
    notice = mediakit.photographed(
        ["Library closed on Monday for inventory", "Return books at the side door"],
        seed=1, tilt=0.08, blur=0.9)
    notice.image.save(folder / "notice.jpg", "JPEG", quality=88,
                      exif=_camera(mediakit.exif(original="2024:05:02 10:11:12")))
    # Ordinary photos without text (generated, and the Pillow test portrait).
    for seed, photo in enumerate(mediakit.photo_set((1024, 768), 3)):
        photo.save(folder / f"holiday-{seed}.jpg", "JPEG", quality=85, exif=_camera(mediakit.exif()))
    (folder / "hopper.jpg").write_bytes((testkit.DATA / "hopper.jpg").read_bytes())
    # An iPhone photo: HEIC, held sideways (orientation 6), with its UTC offset.
    register_heif()
    (folder / "IMG_0042.HEIC").write_bytes(mediakit.heic(mediakit.photo_like(640, 480, seed=9), _camera(
        mediakit.exif(orientation=6, original="2023:07:14 18:30:05", offset="+02:00"))))
    # An older camera's JPEG: a date without an offset.
    naive = _camera(mediakit.exif(original="2019:12:31 23:59:58"))
    mediakit.photo_like(800, 600, seed=11).save(folder / "DSC_0001.JPG", "JPEG", quality=85, exif=naive)
    # A video: three scenes, a spoken sound track, a recording time.
    speech = speechkit.load(speechkit.espeak(SPOKEN, folder / "spoken.wav"))
    (folder / "spoken.wav").unlink()
    mediakit.scene_video(folder / "talk.mp4", SCENES, 12.0, size=(160, 90), soundtrack=speech,
                         metadata={"creation_time": "2022-12-24T18:00:00.000000Z"})
    # Ten minutes of slides, one every 5 s: more scenes than the frame cap.
    mediakit.scene_video(folder / "lecture.mkv", [5.0 * k for k in range(120)], 600.0, fps=2,
                         container="matroska")
    # A sound-only MP4 (a podcast episode): a video container with no picture.
    episode = speechkit.load(speechkit.espeak(speechkit.SENTENCES[0], folder / "episode.wav"))
    (folder / "episode.wav").unlink()
    speechkit.encode(episode, folder / "podcast.bin", "m4a")
    (folder / "podcast.mp4").write_bytes(_as_isom((folder / "podcast.bin").read_bytes()))
    (folder / "podcast.bin").unlink()
    # Damaged videos: garbage after an MP4 header, and a file cut short.
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\x07" * 4000)
    whole = mediakit.scene_video(folder / "whole.mp4", [0.0, 5.0], 20.0, faststart=True).read_bytes()
    (folder / "whole.mp4").unlink()
    (folder / "cut.mp4").write_bytes(whole[: len(whole) // 2])
    return folder


def _camera(tags: Any) -> Any:
    tags[0x010F], tags[0x0110] = "Apple", "iPhone 13"
    return tags


def _as_isom(m4a: bytes) -> bytes:
    """The iPod-flavoured MP4 with the generic "isom" brand many recorders write: it sniffs as
    video/mp4, not audio."""
    assert m4a[4:8] == b"ftyp"
    return m4a[:8] + b"isom" + m4a[12:]


@pytest.fixture(scope="module")
def built(folder: Path, env: dict[str, str], tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("built") / "index"
    result = testkit.run_cli("index", str(folder), "--out", str(out), "--json", env=env, timeout=900)
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, Any]] = []
    for table in IndexReader(out).live_rows():
        rows.extend(table.to_pylist())
    files = {Path(row["path"]).name: row for row in IndexReader(out).files().to_pylist()}
    return out, json.loads(result.stdout), rows, files


def _rows(rows: list[dict[str, Any]], name: str, kind: str | None = None) -> list[dict[str, Any]]:
    return [row for row in rows if Path(row["path"]).name == name and kind in (None, row["kind"])]


def _search(out: Path, env: dict[str, str], query: str) -> list[dict[str, Any]]:
    result = testkit.run_cli("search", query, "--index", str(out), "--mode", "text", "-k", "3", "--json",
                             env=env)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_screenshots_words_are_rows_and_each_is_found_first_by_a_phrase_on_it(built, env):
    out, _, rows, files = built
    for name, (*_, lines, phrase) in SCREENSHOTS.items():
        assert files[name]["status"] == "indexed" and files[name]["kind"] == "image"
        texts = [row["text"] for row in _rows(rows, name, "image_text")]
        assert mediakit.word_recall("\n".join(lines), texts) >= 0.9, (name, texts)
        boxes = [row["bbox"] for row in _rows(rows, name, "image_text")]
        assert all(box["x1"] > box["x0"] >= 0 and box["y1"] > box["y0"] >= 0 for box in boxes)
        hits = _search(out, env, phrase)
        assert Path(hits[0]["path"]).name == name and hits[0]["kind"] == "image_text", (phrase, hits)
    notice = _search(out, env, "library closed inventory")
    assert Path(notice[0]["path"]).name == "notice.jpg", "photographed text is read too"


def test_ordinary_photos_give_an_image_row_and_no_text(built):
    _, _, rows, files = built
    for name in ("holiday-0.jpg", "holiday-1.jpg", "holiday-2.jpg", "hopper.jpg", "DSC_0001.JPG",
                 "IMG_0042.HEIC"):
        assert files[name]["status"] == "indexed", files[name]
        assert [row["kind"] for row in _rows(rows, name)] == ["image"], name


def test_photos_carry_when_they_were_taken(built):
    _, _, rows, files = built
    (heic,) = _rows(rows, "IMG_0042.HEIC")
    # 18:30:05 at UTC+02:00 is 16:30:05 UTC.
    assert heic["taken_at"] == datetime(2023, 7, 14, 16, 30, 5, tzinfo=UTC)
    # No offset in EXIF: the camera's clock reading, written as UTC (docs/index.md).
    (old,) = _rows(rows, "DSC_0001.JPG")
    assert old["taken_at"] == datetime(2019, 12, 31, 23, 59, 58, tzinfo=UTC)
    assert all(row["taken_at"] is None for row in _rows(rows, "error.png"))
    assert all(row["mtime"] is not None for row in rows)
    assert files["IMG_0042.HEIC"]["kind"] == "image"


def test_a_video_gives_a_frame_per_scene_and_its_sound_tracks_transcript(built, env):
    out, _, rows, files = built
    assert files["talk.mp4"]["status"] == "indexed" and files["talk.mp4"]["kind"] == "video"
    frames = _rows(rows, "talk.mp4", "video_frame")
    for start in SCENES:
        assert any(0 <= row["start_seconds"] - start <= 1.0 for row in frames), (start, frames)
    assert all(row["end_seconds"] >= row["start_seconds"] for row in frames)
    assert all(row["taken_at"] == datetime(2022, 12, 24, 18, 0, tzinfo=UTC) for row in frames)
    speech = _rows(rows, "talk.mp4", "audio")
    # Whisper tiny.en on espeak through AAC: the content words come through (its accuracy is
    # the transcription tests' subject).
    heard = set(speechkit.normalize(" ".join(row["text"] for row in speech)))
    assert {"paris", "sunny", "today"} <= heard, heard
    hits = _search(out, env, "Paris sunny today")
    assert Path(hits[0]["path"]).name == "talk.mp4" and hits[0]["kind"] == "audio"


def test_a_ten_minute_video_stays_within_the_frame_cap(built):
    _, _, rows, _ = built
    frames = sorted(row["start_seconds"] for row in _rows(rows, "lecture.mkv", "video_frame"))
    assert 32 <= len(frames) <= 64  # SENSORIUM_MEDIA__MAX_FRAMES_PER_VIDEO, default 64
    assert frames[0] == 0.0 and frames[-1] >= 540, "the frames left still cover the whole video"
    assert not _rows(rows, "lecture.mkv", "audio")  # no sound track: frames alone


def test_a_video_container_without_a_picture_is_indexed_by_its_sound(built):
    _, _, rows, files = built
    assert files["podcast.mp4"]["kind"] == "video" and files["podcast.mp4"]["status"] == "indexed"
    assert Counter(row["kind"] for row in _rows(rows, "podcast.mp4")) == Counter(
        {"audio": len(_rows(rows, "podcast.mp4"))})


def test_damaged_videos_give_their_reason_and_the_job_goes_on(built):
    _, summary, _, files = built
    assert (files["broken.mp4"]["status"], files["broken.mp4"]["reason"]) == ("error", "VIDEO_UNDECODABLE")
    assert (files["cut.mp4"]["status"], files["cut.mp4"]["reason"]) == ("error", "VIDEO_TRUNCATED")
    assert "cut short" in files["cut.mp4"]["message"]
    assert not files["broken.mp4"]["retryable"] and files["broken.mp4"]["message"]
    assert summary["files"]["by_status"]["indexed"] == len(files) - 2
    assert summary["files"]["by_kind"]["video"] == 5


def test_ocr_and_frames_print_the_same_in_process_and_through_a_server(folder, env):
    local_text = testkit.run_cli("ocr", str(folder / "invoice.png"), "--boxes", env=env)
    local_frames = testkit.run_cli("frames", str(folder / "talk.mp4"), "--json", env=env)
    with testkit.serve(env={**env, "SENSORIUM_SERVICES": "media"}) as server:
        remote_text = testkit.run_cli("ocr", str(folder / "invoice.png"), "--boxes", "--server",
                                      server.target, env=env)
        remote_frames = testkit.run_cli("frames", str(folder / "talk.mp4"), "--json", "--server",
                                        server.target, env=env)
        refused = testkit.run_cli("frames", str(folder / "broken.mp4"), "--server", server.target, env=env)
    assert local_text.returncode == remote_text.returncode == 0, local_text.stderr + remote_text.stderr
    assert local_text.stdout == remote_text.stdout and "20418" in local_text.stdout
    assert local_frames.stdout == remote_frames.stdout
    shown = json.loads(local_frames.stdout)
    assert len(shown["frames"]) >= len(SCENES) and "jpeg" not in shown["frames"][0]
    assert refused.returncode == 1 and "INVALID_ARGUMENT VIDEO_UNDECODABLE" in refused.stderr
