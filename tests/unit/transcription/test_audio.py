"""PyAV decoding: formats, the duration limit while decoding, truncation, not-audio input."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np
import pytest
from faster_whisper.audio import decode_audio

import fifo_trap
import speechkit
import testkit
from sensorium.errors import Reason, SensoriumError
from sensorium.transcription import audio

JFK = testkit.JFK


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> np.ndarray:
    path = tmp_path_factory.mktemp("speech") / "fox.wav"
    return speechkit.load(speechkit.espeak(speechkit.SENTENCES[0], path))


@pytest.mark.parametrize("fmt", [*speechkit.FORMATS, "mp4"])
def test_every_format_decodes_to_16k_mono(fmt, speech, tmp_path):
    path = speechkit.encode(speech, tmp_path / f"clip.{fmt}", fmt)
    decoded = audio.decode(path, max_seconds=60)
    assert decoded.samples.dtype == np.float32
    assert abs(decoded.duration - len(speech) / 16000) < 0.1
    assert decoded.shortfall_seconds == 0.0
    if fmt in ("wav", "flac"):  # lossless: the same samples
        assert np.array_equal(decoded.samples, speech)


def test_same_samples_as_faster_whispers_own_decoder():
    decoded = audio.decode(JFK, max_seconds=60)
    assert np.array_equal(decoded.samples, decode_audio(str(JFK)))
    assert decoded.declared_seconds == 11.0 and decoded.codec == "flac"


def test_file_objects_decode_like_paths():
    from_file = audio.decode(io.BytesIO(JFK.read_bytes()), max_seconds=60)
    assert np.array_equal(from_file.samples, audio.decode(JFK, max_seconds=60).samples)


def test_header_only_wav_is_empty_not_an_error():
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(16000)
    buffer.seek(0)
    decoded = audio.decode(buffer, max_seconds=60)
    assert len(decoded.samples) == 0 and decoded.shortfall_seconds == 0.0


@pytest.mark.parametrize(("content", "reason"), [
    (testkit.make_pdf(["not audio at all"]), None), (bytes(range(256)) * 40, Reason.AUDIO_UNDECODABLE),
    # Text is never audio (and every playlist is text): refused before FFmpeg sees it.
    (b"hello world\n" * 50, Reason.UNSUPPORTED_TYPE),
])
def test_not_audio_is_refused(content, reason):
    with pytest.raises(SensoriumError) as error:
        audio.decode(io.BytesIO(content), max_seconds=60)
    assert error.value.reason in ({reason} if reason else {Reason.AUDIO_UNDECODABLE,
                                                           Reason.UNSUPPORTED_TYPE})
    assert "/tmp" not in error.value.message


def test_a_file_without_audio_track_says_so(tmp_path):
    import av

    path = tmp_path / "video.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=5)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for n in range(5):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            frame.pts = n
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(SensoriumError) as error:
        audio.decode(path, max_seconds=60)
    assert error.value.reason is Reason.AUDIO_UNDECODABLE
    assert "no audio track" in error.value.message
    assert error.value.metadata == {"missing_track": "audio"}  # the index job reads the frames alone


def test_duration_limit_is_enforced_on_decoded_samples(speech, tmp_path):
    long = np.tile(speech, 10)  # ~50 s
    path = speechkit.encode(long, tmp_path / "long.flac", "flac")
    with pytest.raises(SensoriumError) as error:
        audio.decode(path, max_seconds=20)
    assert error.value.reason is Reason.AUDIO_TOO_LONG
    assert error.value.setting == "transcription.max_duration_seconds"


def test_a_forged_short_duration_does_not_bypass_the_limit(speech, tmp_path):
    # A FLAC whose STREAMINFO claims 1 s but that carries ~50 s: only decoded samples count.
    path = speechkit.encode(np.tile(speech, 10), tmp_path / "forged.flac", "flac")
    data = bytearray(path.read_bytes())
    info = 8  # "fLaC" and the metadata block header
    data[info + 13] &= 0xF0  # the total sample count: the low 36 bits of bytes 13-17
    data[info + 14:info + 18] = (16000).to_bytes(4, "big")
    assert audio.decode(io.BytesIO(bytes(data)), max_seconds=60).declared_seconds == 1.0
    with pytest.raises(SensoriumError) as error:
        audio.decode(io.BytesIO(bytes(data)), max_seconds=20)
    assert error.value.reason is Reason.AUDIO_TOO_LONG


@pytest.mark.parametrize("fmt", ["flac", "wav", "mp3", "m4a"])
def test_truncation_is_measured_against_the_declared_duration(fmt, speech, tmp_path):
    clip = np.tile(speech, 3)  # ~15 s
    content = speechkit.encode(clip, tmp_path / f"clip.{fmt}", fmt).read_bytes()
    if fmt == "m4a":  # the index (moov) must come first for a cut file to open at all
        content = _faststart(tmp_path / "clip.m4a", clip)
    cut = audio.decode(io.BytesIO(content[: len(content) // 2]), max_seconds=60)
    assert cut.declared_seconds == pytest.approx(len(clip) / 16000, abs=0.1)
    assert cut.shortfall_seconds > 3
    assert cut.shortfall_seconds == pytest.approx(cut.declared_seconds - cut.duration)


def _faststart(path: Path, clip: np.ndarray) -> bytes:
    import av

    out = path.with_name("fast.m4a")
    with av.open(str(path)) as source, av.open(str(out), "w", format="ipod",
                                               options={"movflags": "faststart"}) as target:
        stream = target.add_stream_from_template(source.streams.audio[0])
        for packet in source.demux(source.streams.audio[0]):
            if packet.dts is not None:
                packet.stream = stream
                target.mux(packet)
    return out.read_bytes()


def test_garbage_in_the_middle_is_reported_as_a_shortfall():
    content = bytearray(JFK.read_bytes())
    middle = len(content) // 2
    content[middle:] = np.random.default_rng(0).integers(0, 256, len(content) - middle, np.uint8).tobytes()
    decoded = audio.decode(io.BytesIO(bytes(content)), max_seconds=60)
    assert decoded.shortfall_seconds > 3


def test_mp3_without_a_frame_count_declares_no_duration(speech, tmp_path):
    content = speechkit.encode(speech, tmp_path / "clip.mp3", "mp3").read_bytes()
    assert audio._has_mp3_frame_count(io.BytesIO(content))
    stripped = content.replace(b"Xing", b"xxxx").replace(b"Info", b"xxxx")
    decoded = audio.decode(io.BytesIO(stripped[: len(stripped) // 2]), max_seconds=60)
    assert decoded.declared_seconds is None and decoded.shortfall_seconds == 0.0


def test_ogg_cut_short_cannot_show_truncation(speech, tmp_path):
    content = speechkit.encode(np.tile(speech, 3), tmp_path / "clip.opus", "opus").read_bytes()
    decoded = audio.decode(io.BytesIO(content[: len(content) // 2]), max_seconds=60)
    assert decoded.declared_seconds is None and decoded.duration > 3


def test_stop_ends_decoding_between_packets():
    with pytest.raises(InterruptedError):
        audio.decode(JFK, max_seconds=60, stop=lambda: True)


def test_small_shortfalls_are_tolerated():
    decoded = audio.DecodedAudio(np.zeros(16000 * 99, np.float32), "wav", "pcm", 100.0, 0)
    assert decoded.shortfall_seconds == 0.0  # 1 s of 100: encoder padding territory
    decoded = audio.DecodedAudio(np.zeros(16000 * 90, np.float32), "wav", "pcm", 100.0, 0)
    assert decoded.shortfall_seconds == pytest.approx(10.0)


def _playlists(victim: Path) -> dict[str, bytes]:
    """What made FFmpeg read another file (issue 22): a concat script, an HLS playlist and an
    .m3u, each naming `victim`."""
    return {
        "ffconcat": f"ffconcat version 1.0\nfile '{victim.name}'\n".encode(),
        "hls": (f"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.0,\n{victim.name}\n"
                "#EXT-X-ENDLIST\n").encode(),
        "m3u": f"{victim}\n".encode(),
    }


@pytest.mark.parametrize("kind", ["ffconcat", "hls", "m3u"])
def test_a_playlist_is_refused_and_never_opens_the_file_it_names(tmp_path, kind):
    victim = tmp_path / "victim.wav"
    with fifo_trap.trap(victim) as opened:
        upload = tmp_path / f"upload.{kind}"
        upload.write_bytes(_playlists(victim)[kind])
        for source in (upload, io.BytesIO(upload.read_bytes())):
            with pytest.raises(SensoriumError) as error:
                audio.decode(source, max_seconds=60)
            assert error.value.reason is Reason.UNSUPPORTED_TYPE
            assert "text" in error.value.message
        with pytest.raises(SensoriumError):
            audio.estimate_seconds(str(upload))
        assert not opened.is_set(), "FFmpeg opened the file the playlist names"


@pytest.mark.parametrize("kind", ["ffconcat", "hls"])
def test_ffmpeg_itself_refuses_demuxers_off_the_allowlist(tmp_path, kind, monkeypatch):
    """The second fence: were the text check ever passed, FFmpeg's own format allowlist refuses
    the concat and HLS demuxers before either opens anything."""
    monkeypatch.setattr(audio, "_is_text", lambda head: False)
    victim = tmp_path / "victim.wav"
    with fifo_trap.trap(victim) as opened:
        upload = tmp_path / f"upload.{kind}"
        upload.write_bytes(_playlists(victim)[kind])
        with pytest.raises(SensoriumError) as error:
            audio.decode(upload, max_seconds=60)
        assert error.value.reason in (Reason.UNSUPPORTED_TYPE, Reason.AUDIO_UNDECODABLE)
        assert not opened.is_set(), "FFmpeg opened the file the playlist names"


def test_decode_to_file_writes_the_same_samples_and_stops_at_an_estimate(tmp_path):
    out = tmp_path / "samples.f32"
    whole = audio.decode(JFK, max_seconds=60)
    report = audio.decode_to_file(str(JFK), str(out), max_seconds=60, final=True)
    assert report.samples == len(whole.samples) and not report.past_limit
    assert np.array_equal(np.fromfile(out, dtype=np.float32), whole.samples)
    assert report.declared_seconds == whole.declared_seconds
    short = audio.decode_to_file(str(JFK), str(out), max_seconds=3, final=False)
    assert short.past_limit and short.samples < len(whole.samples)
    with pytest.raises(SensoriumError) as error:
        audio.decode_to_file(str(JFK), str(out), max_seconds=3, final=True)
    assert error.value.reason is Reason.AUDIO_TOO_LONG
    assert audio.estimate_seconds(str(JFK)) == pytest.approx(11.0, abs=0.1)
