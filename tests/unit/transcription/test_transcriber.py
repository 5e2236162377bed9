"""The engine on real packaged weights: one load path for every kind of name, the library's own
output, no invented words on silence, segments streamed as decoded."""

from __future__ import annotations

import shutil
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

import speechkit
import testkit
from enginekit import transcribe_all
from sensorium.batching import StreamCancelled
from sensorium.transcription import models
from sensorium.transcription.api import Info, Options, Segment
from sensorium.transcription.audio import decode
from sensorium.transcription.transcriber import Request, Transcriber

pytestmark = pytest.mark.weights
JFK = testkit.JFK
DETERMINISTIC = Options(temperatures=(0.0,), condition_on_previous_text=False)


def load(setting: str, model_dir: Path) -> Transcriber:
    engine = Transcriber(models.resolve(setting, model_dir), device="cpu", compute_type="int8",
                         cpu_threads=2, workers=1, download_root=str(model_dir))
    engine.load()
    return engine


@pytest.fixture(scope="module")
def tiny(model_dir) -> Transcriber:
    return load("packaged:tiny.en", model_dir)


def fake_hub_cache(model_dir: Path, source: Path, repo: str) -> None:
    """`source` laid out as huggingface_hub's cache keeps a downloaded `repo`."""
    folder = model_dir / f"models--{repo.replace('/', '--')}"
    snapshot = folder / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("0" * 40)
    for file in source.iterdir():
        if not file.name.startswith("."):
            (snapshot / file.name).symlink_to(file)


def test_packaged_local_and_hub_names_load_through_one_path(model_dir, tmp_path):
    packaged = models.resolve("packaged:tiny.en", model_dir)
    local = tmp_path / "my-model"
    shutil.copytree(packaged.source, local)
    fake_hub_cache(tmp_path, Path(packaged.source), "Systran/faster-whisper-tiny.en")
    samples = decode(JFK, max_seconds=60).samples
    texts = []
    for setting, root in (("packaged:tiny.en", model_dir), (str(local), model_dir), ("tiny.en", tmp_path)):
        engine = Transcriber(models.resolve(setting, root), device="cpu", compute_type="int8",
                             cpu_threads=2, workers=1, download_root=str(root))
        engine.load()
        info, segments = transcribe_all(engine, Request(samples, DETERMINISTIC))
        assert info.model == setting
        texts.append(" ".join(s.text for s in segments))
    assert texts[0] == texts[1] == texts[2]
    assert speechkit.wer(speechkit.JFK_TEXT, texts[0]) <= 0.10


def test_a_hub_name_not_prepared_fails_without_downloading(tmp_path, monkeypatch):
    # Any attempt to reach the network is recorded and refused: the test does not rely on the
    # network namespace scripts/test runs in, where a download would fail with a similar message.
    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args[1:] or kwargs)
        raise OSError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    engine = Transcriber(models.resolve("tiny.en", tmp_path), device="cpu", compute_type="int8",
                         cpu_threads=1, workers=1, download_root=str(tmp_path))
    with pytest.raises(Exception, match=r"(?i)local|cache|offline|snapshot"):
        engine.load()
    assert attempts == []


def test_same_transcript_as_faster_whisper_called_directly(tiny):
    samples = decode(JFK, max_seconds=60).samples
    options = Options(temperatures=(0.0,), word_timestamps=True)
    info, segments = transcribe_all(tiny, Request(samples, options))
    direct, direct_info = tiny.whisper.transcribe(str(JFK), temperature=[0.0], word_timestamps=True)
    direct = list(direct)
    assert [s.text for s in segments] == [s.text.strip() for s in direct]
    assert [(s.start, s.end) for s in segments] == [(s.start, s.end) for s in direct]
    assert info.language == direct_info.language == "en" and info.duration == 11.0


def _quiet(seconds: float = 10) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "digital silence": speechkit.silence(seconds),
        "faint hiss": rng.normal(0, 0.003, int(16000 * seconds)).astype(np.float32),
        "audible hiss": rng.normal(0, 0.02, int(16000 * seconds)).astype(np.float32),
    }


def test_silence_and_hiss_give_no_words_on_tiny_en(tiny):
    for name, samples in _quiet().items():
        for options in (Options(), DETERMINISTIC, Options(vad_filter=True)):
            _, segments = transcribe_all(tiny, Request(samples, options))
            assert segments == [], (name, options, [s.text for s in segments])


def test_silence_gives_no_words_on_base(model_dir):
    # Fewer cases than tiny.en: base on noise runs the whole temperature fallback (slow).
    base = load("packaged:base", model_dir)
    quiet = _quiet()
    for name, options in (("digital silence", Options()), ("digital silence", DETERMINISTIC),
                          ("faint hiss", DETERMINISTIC)):
        _, segments = transcribe_all(base, Request(quiet[name], options))
        assert segments == [], (name, options, [s.text for s in segments])


def test_speech_after_silence_is_kept(tiny, tmp_path):
    speech = speechkit.load(speechkit.espeak(speechkit.SENTENCES[6], tmp_path / "rice.wav"))
    samples = np.concatenate([speechkit.silence(8), speech, speechkit.silence(8)])
    _, segments = transcribe_all(tiny, Request(samples, DETERMINISTIC))
    assert "served in round bowls" in " ".join(s.text for s in segments)  # kept, not dropped


def test_info_comes_first_then_segments_and_a_cancel_stops_within_one(tiny, tmp_path):
    speech = speechkit.load(speechkit.espeak(" ".join(speechkit.SENTENCES), tmp_path / "all.wav"))
    samples = np.tile(speech, 4)  # ~2.5 min: several 30 s windows
    pieces: list[object] = []
    stop = threading.Event()

    def emit(piece: object) -> None:
        if stop.is_set():
            raise StreamCancelled
        pieces.append(piece)
        if isinstance(piece, Segment):
            stop.set()  # the consumer leaves after the first segment

    with pytest.raises(StreamCancelled):
        tiny.run(Request(samples, DETERMINISTIC), emit, lambda: False)
    assert isinstance(pieces[0], Info)
    assert [type(p) for p in pieces] == [Info, Segment]


def test_cancelled_is_checked_between_segments(tiny):
    samples = decode(JFK, max_seconds=60).samples
    pieces: list[object] = []
    tiny.run(Request(samples, DETERMINISTIC), pieces.append, lambda: bool(pieces[1:]))
    assert [type(p) for p in pieces] == [Info, Segment]
