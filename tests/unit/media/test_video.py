"""Video frames: one per scene, near its start; the interval and the cap hold; damaged videos
give their reason."""

from __future__ import annotations

import io
import itertools

import pytest

import mediakit
from sensorium.embedding.images import decode_image
from sensorium.errors import Reason, SensoriumError
from sensorium.media.video import FrameOptions, extract_frames, recorded_at, shortfall_seconds

SCENES = [0.0, 3.2, 7.5, 12.0, 17.3]


def test_each_scene_gives_a_frame_within_a_second_of_its_start(tmp_path):
    path = mediakit.scene_video(tmp_path / "clip.mp4", SCENES, 20.0)
    result = extract_frames(path, FrameOptions(interval_seconds=60))
    cuts = [frame.seconds for frame in result.frames if frame.scene_change]
    assert len(cuts) == len(SCENES)  # the drifting block inside a scene is no cut
    for start, seconds in zip(SCENES, cuts, strict=True):
        assert start <= seconds < start + 1.0
    assert result.decoded_seconds == pytest.approx(19.9, abs=0.15)
    assert result.declared_seconds == pytest.approx(19.9, abs=0.15)
    assert shortfall_seconds(result) == 0.0
    assert (result.width, result.height, result.codec) == (96, 54, "h264")


def test_over_its_time_budget_decoding_keeps_to_key_frames_and_still_finds_the_cuts(tmp_path):
    path = mediakit.scene_video(tmp_path / "clip.mp4", SCENES, 20.0)
    assert extract_frames(path, FrameOptions()).keyframes_only_after is None
    hurried = extract_frames(path, FrameOptions(interval_seconds=60, time_budget_seconds=1e-6))
    assert hurried.keyframes_only_after == 0.0
    cuts = [frame.seconds for frame in hurried.frames if frame.scene_change]
    # libx264 starts a new key frame at each cut (its scenecut detection), as encoders do.
    assert len(cuts) == len(SCENES)
    assert all(start <= seconds < start + 1.0 for start, seconds in zip(SCENES, cuts, strict=True))


def test_frames_are_jpegs_the_embedding_decoder_takes(tmp_path):
    path = mediakit.scene_video(tmp_path / "clip.mp4", SCENES[:2], 5.0, size=(1280, 720))
    result = extract_frames(path, FrameOptions(max_side=256))
    assert len(result.frames) == 2
    for frame in result.frames:
        assert frame.jpeg[:3] == b"\xff\xd8\xff" and len(frame.jpeg) < 30_000
        decoded = decode_image(frame.jpeg, max_bytes=1 << 20, max_pixels=1 << 20)
        assert decoded.image.size == (frame.width, frame.height) == (256, 144)


def test_a_long_scene_gets_a_frame_every_interval(tmp_path):
    path = mediakit.scene_video(tmp_path / "still.mp4", [0.0], 41.0, fps=4, size=(64, 36))
    result = extract_frames(path, FrameOptions(interval_seconds=10))
    times = [frame.seconds for frame in result.frames]
    assert [frame.scene_change for frame in result.frames] == [True, False, False, False, False]
    assert times[0] == 0.0
    assert all(9.9 <= later - earlier <= 10.6 for earlier, later in itertools.pairwise(times))


def test_a_ten_minute_video_stays_within_the_cap_and_covers_its_length(tmp_path):
    scenes = [7.0 * index for index in range(86)]  # a cut every 7 s
    path = mediakit.scene_video(tmp_path / "talk.mp4", scenes, 600.0, fps=2, size=(64, 36))
    result = extract_frames(path, FrameOptions(interval_seconds=10, max_frames=20))
    times = [frame.seconds for frame in result.frames]
    assert len(times) == 20 and result.candidates > 86
    assert times == sorted(times) and times[0] == 0.0
    # Evenly thinned: no stretch of the video is left far emptier than 600 s / 20 frames.
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)] + [600.0 - times[-1]]
    assert max(gaps) <= 2.5 * 600 / 20


def test_a_portrait_phone_video_gives_upright_frames(tmp_path):
    path = mediakit.scene_video(tmp_path / "portrait.mp4", [0.0], 2.0, size=(96, 54), rotate_clockwise=True)
    result = extract_frames(path, FrameOptions())
    assert (result.width, result.height) == (54, 96)
    assert (result.frames[0].width, result.frames[0].height) == (54, 96)


def _error(source: object, options: FrameOptions | None = None) -> SensoriumError:
    with pytest.raises(SensoriumError) as error:
        extract_frames(source, options or FrameOptions())  # type: ignore[arg-type]
    return error.value


def test_a_cut_short_mp4_without_its_index_is_undecodable(tmp_path):
    data = mediakit.scene_video(tmp_path / "clip.mp4", SCENES, 20.0).read_bytes()
    error = _error(io.BytesIO(data[: len(data) // 2]))  # the index (moov) is at the end: lost
    assert error.reason is Reason.VIDEO_UNDECODABLE and "cannot decode the video" in error.message


@pytest.mark.parametrize(("container", "faststart"), [("mp4", True), ("matroska", False)])
def test_a_cut_short_video_with_its_index_is_truncated(tmp_path, container, faststart):
    path = mediakit.scene_video(tmp_path / "clip.bin", SCENES, 20.0, container=container, faststart=faststart)
    data = path.read_bytes()
    error = _error(io.BytesIO(data[: len(data) // 2]))
    assert error.reason is Reason.VIDEO_TRUNCATED
    assert float(error.metadata["declared_seconds"]) == pytest.approx(19.9, abs=0.15)
    assert float(error.metadata["decoded_seconds"]) < 15
    # What did decode is usable when the caller says so.
    partial = extract_frames(io.BytesIO(data[: len(data) // 2]), FrameOptions(allow_truncated=True))
    assert partial.frames[0].seconds == 0.0 and shortfall_seconds(partial) > 5


def test_not_a_video_and_no_video_track_are_undecodable(tmp_path):
    garbage = _error(io.BytesIO(b"\x00\x01junk" * 1000))
    assert garbage.reason is Reason.VIDEO_UNDECODABLE
    sound = _error(mediakit.audio_only(tmp_path / "voice.m4a"))
    assert sound.reason is Reason.VIDEO_UNDECODABLE and "no video track (audio)" in sound.message
    assert sound.metadata == {"missing_track": "video"} and "missing_track" not in garbage.metadata


def test_a_damaged_stretch_does_not_end_decoding(tmp_path):
    path = mediakit.scene_video(tmp_path / "clip.mkv", SCENES, 20.0, container="matroska")
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 400] = bytes(400)  # a damaged stretch inside the stream
    result = extract_frames(io.BytesIO(bytes(data)), FrameOptions(allow_truncated=True))
    assert result.frames[0].seconds == 0.0
    assert result.frames[-1].seconds > 17  # the last scene, after the damage, is there


def test_frames_over_the_pixel_limit_are_refused_before_decoding(tmp_path):
    path = mediakit.scene_video(tmp_path / "clip.mp4", [0.0], 1.0, size=(320, 240))
    error = _error(path, FrameOptions(max_pixels=320 * 240 - 1))
    assert error.reason is Reason.IMAGE_TOO_LARGE and error.metadata["limit_pixels"] == str(320 * 240 - 1)


def test_a_caller_that_is_gone_stops_decoding(tmp_path):
    path = mediakit.scene_video(tmp_path / "clip.mp4", SCENES, 20.0)
    with pytest.raises(InterruptedError):
        extract_frames(path, FrameOptions(), stop=lambda: True)


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ({"creation_time": "2023-07-14T16:30:05.000000Z"}, "2023-07-14T16:30:05+00:00"),
        ({"creation_time": "2023-07-14 16:30:05"}, "2023-07-14T16:30:05+00:00"),
        # An iPhone's own tag keeps the local time and offset; it wins over the UTC one.
        ({"com.apple.quicktime.creationdate": "2023-07-14T18:30:05+0200",
          "creation_time": "2023-07-14T16:30:05.000000Z"}, "2023-07-14T18:30:05+02:00"),
        ({"creation_time": "1904-01-01T00:00:00.000000Z"}, None),  # MP4's zero date
        ({"creation_time": "garbage"}, None),
        ({}, None),
    ],
)
def test_when_a_video_was_recorded(tags, expected):
    when = recorded_at(tags)
    assert (when.isoformat() if when else None) == expected


def test_the_recording_time_comes_with_the_frames(tmp_path):
    path = mediakit.scene_video(tmp_path / "clip.mp4", [0.0, 2.0], 4.0,
                                metadata={"creation_time": "2022-12-24T18:00:00.000000Z"})
    assert extract_frames(path, FrameOptions()).taken_at.isoformat() == "2022-12-24T18:00:00+00:00"


@pytest.mark.parametrize("content", [
    b"ffconcat version 1.0\nfile '/etc/passwd'\n",
    b"#EXTM3U\n#EXT-X-VERSION:3\n#EXTINF:10,\nfile:///etc/hostname\n",
])
def test_playlists_and_concat_scripts_are_refused_before_ffmpeg_opens_what_they_name(tmp_path, content):
    path = tmp_path / "clip.mp4"
    path.write_bytes(content)
    error = _error(path)
    assert error.reason is Reason.UNSUPPORTED_TYPE and "never files another file names" in error.message
