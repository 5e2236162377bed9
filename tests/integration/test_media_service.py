"""The media service on a real in-process server: image text unary and streamed, video frames
streamed, the remote engine answering as the runtime does, limits, damaged input, health and
the `media` token scope."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from pathlib import Path

import grpc
import pytest
from prometheus_client import REGISTRY

import mediakit
import testkit
from sensorium.client import Client, ClientError
from sensorium.engines import InProcessEngines, RemoteEngines
from sensorium.errors import Reason, SensoriumError
from sensorium.media.api import MEDIA, ImageTextOptions, TextStatus, VideoOptions
from sensorium.media.remote import MediaClient
from sensorium.media.v1 import media_service_pb2 as pb
from sensorium.runtimes import Runtimes

SCENES = [0.0, 3.0, 6.5]
MEDIA_ONLY = "5e7a9c1b3d5f7a9c2e4b6d8f0a1c3e5b7d9f1a3c5e7b9d2f4a6c8e0b1d3f5a7c"
PDF_ONLY = "0a2b4c6d8e1f3a5b7c9d0e2f4a6b8c1d3e5f7a9b0c2d4e6f8a1b3c5d7e9f0a2b"


@pytest.fixture
async def media_server(start_server, tmp_path: Path):
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{MEDIA_ONLY} media\n{PDF_ONLY} pdf\n")
    tokens.chmod(0o600)  # a secret (the server refuses one others may read)
    return await start_server(services=["media"], media={"workers": 1, "max_image_bytes": 4_000_000},
                              auth={"tokens_file": tokens})


SHOT = mediakit.screenshot(list(mediakit.LINES[:3]), size=18)


def _files(tmp_path: Path) -> dict[str, Path]:
    shot = SHOT
    (tmp_path / "shot.png").write_bytes(mediakit.encode(shot.image, "PNG"))
    photo = mediakit.photo_like(1600, 1200, seed=2)
    tags = mediakit.exif(orientation=6, original="2023:07:14 18:30:05", offset="+02:00")
    photo.save(tmp_path / "photo.jpg", "JPEG", quality=90, exif=tags)
    mediakit.scene_video(tmp_path / "clip.mp4", SCENES, 9.0,
                         metadata={"creation_time": "2022-12-24T18:00:00.000000Z"})
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + b"garbage" * 500)
    return {"shot": tmp_path / "shot.png", "photo": tmp_path / "photo.jpg",
            "video": tmp_path / "clip.mp4", "broken": tmp_path / "broken.mp4"}


async def test_text_frames_and_metadata_over_grpc(media_server, tmp_path):
    files = _files(tmp_path)
    before = (_metric("sensorium_media_files_total", operation="image_text", outcome="ok"),
              _metric("sensorium_media_files_total", operation="video_frames", outcome="VIDEO_UNDECODABLE"),
              _metric("sensorium_media_text_checks_total", status="NO_TEXT"))
    async with Client(f"127.0.0.1:{media_server.port}", insecure=True, token=MEDIA_ONLY) as client:
        assert await client.health("sensorium.media.v1.MediaService") == "SERVING"
        calls = MediaClient(client)
        unary = await calls.read_image_text(files["shot"].read_bytes())
        found = unary.result
        assert found.status == pb.TEXT_STATUS_READ and (found.width, found.height) == SHOT.image.size
        assert mediakit.word_recall(SHOT.text, [line.text for line in found.lines]) >= 0.9
        assert all(line.bbox.x1 > line.bbox.x0 and line.confidence > 0.5 for line in found.lines)

        streamed = [m async for m in calls.stream_read_image_text(
            files["photo"], pb.ImageTextOptions(preview_side=256))]
        (photo,) = [m.result for m in streamed]
        assert photo.status == pb.TEXT_STATUS_NO_TEXT and photo.photo and not photo.lines
        assert (photo.width, photo.height) == (1200, 1600)  # EXIF orientation 6 applied
        assert photo.taken_at.zone_known and photo.taken_at.utc_offset_minutes == 120
        assert photo.preview[:2] == b"\xff\xd8"

        messages = [m async for m in calls.stream_extract_video_frames(files["video"])]
        frames = [m.frame for m in messages if m.WhichOneof("result") == "frame"]
        (summary,) = [m.summary for m in messages if m.WhichOneof("result") == "summary"]
        assert messages[-1].WhichOneof("result") == "summary"
        for start in SCENES:
            assert any(0 <= f.seconds - start <= 1.0 and f.scene_change for f in frames), start
        assert summary.codec == "h264" and summary.taken_at.time.ToDatetime().year == 2022

        with pytest.raises(ClientError) as broken:
            [m async for m in calls.stream_extract_video_frames(files["broken"])]
        assert (broken.value.details.code, broken.value.details.reason) == (
            grpc.StatusCode.INVALID_ARGUMENT, "VIDEO_UNDECODABLE")
        with pytest.raises(ClientError) as large:
            await calls.read_image_text(b"\xff\xd8" + b"\0" * 4_100_000)
        assert large.value.details.reason == "INPUT_TOO_LARGE"
        assert "SENSORIUM_MEDIA__MAX_IMAGE_BYTES" in large.value.details.message
    # What operators watch (docs/operations.md): files by outcome, photos by what the check said.
    assert _metric("sensorium_media_files_total", operation="image_text", outcome="ok") - before[0] == 2
    assert _metric("sensorium_media_files_total", operation="video_frames",
                   outcome="VIDEO_UNDECODABLE") - before[1] == 1
    assert _metric("sensorium_media_text_checks_total", status="NO_TEXT") - before[2] == 1


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_the_remote_engine_answers_as_the_runtime_does(media_server, tmp_path):
    files = _files(tmp_path)
    settings = testkit.test_settings(services=["media"], media={"workers": 1})
    async with InProcessEngines(Runtimes(settings)) as local:
        here = await local.open(MEDIA)
        local_text = await here.read_image_text(files["shot"], ImageTextOptions(preview_side=128))
        local_photo = await here.read_image_text(files["photo"], ImageTextOptions())
        local_video = await here.extract_frames(files["video"], VideoOptions(max_frames=2))
    client = Client(f"127.0.0.1:{media_server.port}", insecure=True, token=MEDIA_ONLY)
    async with RemoteEngines(client, settings) as remote:
        there = await remote.open(MEDIA)
        remote_text = await there.read_image_text(files["shot"], ImageTextOptions(preview_side=128))
        remote_photo = await there.read_image_text(files["photo"], ImageTextOptions())
        remote_video = await there.extract_frames(files["video"], VideoOptions(max_frames=2))
        with pytest.raises(SensoriumError) as error:
            await there.extract_frames(files["broken"], VideoOptions())
        assert error.value.reason is Reason.VIDEO_UNDECODABLE
    untimed = {"check_seconds": 0.0, "read_seconds": 0.0}
    assert dataclasses.replace(remote_text, **untimed) == dataclasses.replace(local_text, **untimed)
    assert dataclasses.replace(remote_photo, **untimed) == dataclasses.replace(local_photo, **untimed)
    assert remote_photo.status is TextStatus.NO_TEXT
    assert remote_photo.taken_at == datetime(2023, 7, 14, 18, 30, 5, tzinfo=timezone(timedelta(hours=2)))
    assert remote_video == local_video and len(remote_video.frames) == 2


async def test_tokens_are_scoped_to_the_media_service(media_server, tmp_path):
    files = _files(tmp_path)
    async with Client(f"127.0.0.1:{media_server.port}", insecure=True, token=PDF_ONLY) as client:
        with pytest.raises(ClientError) as denied:
            await MediaClient(client).read_image_text(files["shot"].read_bytes())
        assert denied.value.details.code == grpc.StatusCode.PERMISSION_DENIED
        assert "media" in denied.value.details.message
