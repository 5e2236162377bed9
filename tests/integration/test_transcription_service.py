"""The transcription service on a real in-process server with packaged Whisper weights: both
call shapes, accuracy anchors, formats, streaming, cancellation, limits and every error path."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import wave
from pathlib import Path

import grpc
import numpy as np
import pytest
import pytest_asyncio
from prometheus_client import REGISTRY

import fifo_trap
import speechkit
import testkit
from sensorium.client import Client, ClientError
from sensorium.server import Server
from sensorium.transcription.remote import TranscriptionClient
from sensorium.transcription.transcriber import Transcriber
from sensorium.transcription.v1 import transcription_service_pb2 as pb
from sensorium.transcription.v1 import transcription_service_pb2_grpc as pb_grpc

pytestmark = [pytest.mark.weights, pytest.mark.asyncio(loop_scope="module")]
JFK = testkit.JFK
FULL_NAME = "sensorium.transcription.v1.TranscriptionService"


def deterministic(**options: object) -> pb.TranscriptionOptions:
    """What the accuracy anchors use: temperature 0 and no conditioning on previous text."""
    return pb.TranscriptionOptions(temperatures=[0.0], condition_on_previous_text=False, **options)


@pytest.fixture(scope="module")
def speech_dir(tmp_path_factory) -> Path:
    """The known sentences, one espeak-ng WAV each, and all of them in one file."""
    directory = tmp_path_factory.mktemp("speech")
    parts = []
    for i, sentence in enumerate(speechkit.SENTENCES):
        parts += [speechkit.load(speechkit.espeak(sentence, directory / f"{i}.wav")),
                  speechkit.silence(0.5)]
    all_sentences = np.concatenate(parts)
    speechkit.write_wav(all_sentences, directory / "all.wav")
    np.save(directory / "all.npy", all_sentences)
    return directory


async def _server(model: str, model_dir: Path, **transcription: object) -> Server:
    server = Server(testkit.test_settings(
        services=["transcription"], device="cpu", model_dir=model_dir,
        transcription={"model": model, **transcription},
    ))
    await server.start()
    return server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def tiny(model_dir):
    server = await _server("packaged:tiny.en", model_dir, workers=1, queue_size=4)
    async with Client(f"127.0.0.1:{server.port}") as client:
        yield client
    await server._stop_everything(grace=0)


async def _stream(client: Client, path: Path, options: pb.TranscriptionOptions | None = None):
    return [m async for m in TranscriptionClient(client).stream_transcribe(path, options)]


def _text(segments) -> str:
    return " ".join(s.text for s in segments)


def _reason(error: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    return error.value.details.code.name, error.value.details.reason


# ---- accuracy anchors --------------------------------------------------------------------

async def test_jfk_with_tiny_en(tiny):
    response = await TranscriptionClient(tiny).transcribe(JFK.read_bytes(), deterministic())
    assert speechkit.wer(speechkit.JFK_TEXT, _text(response.segments)) <= 0.10
    info = response.info
    assert (info.language, info.language_probability, info.duration_seconds) == ("en", 1.0, 11.0)
    assert info.model == "packaged:tiny.en" and info.task == pb.TASK_TRANSCRIBE
    assert not info.batched and not info.vad_filter and not info.condition_on_previous_text
    assert info.declared_duration_seconds == 11.0 and not info.truncated
    assert response.summary.segment_count == len(response.segments) > 0
    assert 0 < response.summary.real_time_factor < 5


async def test_espeak_sentences_with_tiny_en(tiny, speech_dir):
    response = await TranscriptionClient(tiny).transcribe(
        (speech_dir / "all.wav").read_bytes(), deterministic())
    error_rate = speechkit.wer(speechkit.SENTENCES, [s.text for s in response.segments])
    assert error_rate <= 0.25, _text(response.segments)


async def test_espeak_sentences_with_base_and_silence(model_dir, speech_dir):
    server = await _server("packaged:base", model_dir)
    try:
        async with Client(f"127.0.0.1:{server.port}") as client:
            response = await TranscriptionClient(client).transcribe(
                (speech_dir / "all.wav").read_bytes(), deterministic())
            error_rate = speechkit.wer(speechkit.SENTENCES, [s.text for s in response.segments])
            assert error_rate <= 0.20, _text(response.segments)
            assert response.info.model == "packaged:base"
            assert response.info.language == "en" and response.info.language_probability > 0.5
            quiet = speechkit.encode(speechkit.silence(6), speech_dir / "quiet.flac", "flac")
            silent = await TranscriptionClient(client).transcribe(quiet.read_bytes(), deterministic())
            assert list(silent.segments) == [] and silent.info.duration_seconds == 6.0
    finally:
        await server._stop_everything(grace=0)


async def test_same_transcript_as_the_library_in_process(tiny, model_dir):
    from faster_whisper import WhisperModel

    response = await TranscriptionClient(tiny).transcribe(
        JFK.read_bytes(), deterministic(word_timestamps=True))
    library = WhisperModel(str(model_dir / "packaged" / "tiny.en"), device="cpu",
                           compute_type="int8", cpu_threads=2)
    segments, _ = library.transcribe(str(JFK), temperature=[0.0], condition_on_previous_text=False,
                                     word_timestamps=True)
    segments = list(segments)
    assert [s.text for s in response.segments] == [s.text.strip() for s in segments]
    words = [w for s in response.segments for w in s.words]
    assert [w.text for w in words] == [w.word for s in segments for w in s.words]


# ---- formats -----------------------------------------------------------------------------

async def test_formats_agree(tiny, tmp_path):
    samples = speechkit.load(JFK)
    results = {}
    for fmt in ("wav", "flac", "mp3", "ogg", "opus", "m4a", "mp4"):
        path = speechkit.encode(samples, tmp_path / f"clip.{fmt}", fmt)
        response = await TranscriptionClient(tiny).transcribe(path.read_bytes(), deterministic())
        results[fmt] = _text(response.segments)
    assert results["wav"] == results["flac"]
    assert results["wav"].strip()
    for fmt in ("mp3", "ogg", "opus", "m4a", "mp4"):
        assert speechkit.wer(results["wav"], results[fmt]) <= 0.10, (fmt, results)


async def test_word_timestamps_are_monotonic_and_inside_the_audio(tiny):
    response = await TranscriptionClient(tiny).transcribe(
        JFK.read_bytes(), deterministic(word_timestamps=True))
    words = [w for s in response.segments for w in s.words]
    assert len(words) >= 20
    previous = 0.0
    for word in words:
        assert previous <= word.time.start_seconds <= word.time.end_seconds <= 11.0
        assert 0.0 <= word.probability <= 1.0
        previous = word.time.start_seconds
    for segment in response.segments:
        assert segment.words[0].time.start_seconds >= segment.time.start_seconds - 0.5


# ---- the two call shapes -----------------------------------------------------------------

async def test_stream_sends_info_segments_summary_and_agrees_with_unary(tiny, speech_dir):
    path = speech_dir / "all.wav"
    messages = await _stream(tiny, path, deterministic())
    kinds = [m.WhichOneof("result") for m in messages]
    assert kinds[0] == "info" and kinds[-1] == "summary"
    assert set(kinds[1:-1]) == {"segment"}
    segments = [m.segment for m in messages[1:-1]]
    assert [s.index for s in segments] == list(range(len(segments)))
    unary = await TranscriptionClient(tiny).transcribe(path.read_bytes(), deterministic())
    assert [s.text for s in segments] == [s.text for s in unary.segments]
    assert [s.time for s in segments] == [s.time for s in unary.segments]
    assert messages[-1].summary.segment_count == len(segments)


async def test_long_audio_streams_its_first_segment_early(tiny, speech_dir, tmp_path):
    samples = np.tile(np.load(speech_dir / "all.npy"), 6)  # ~3.5 minutes
    path = speechkit.encode(samples, tmp_path / "long.flac", "flac")
    started = time.monotonic()
    first = None
    count = 0
    async for message in TranscriptionClient(tiny).stream_transcribe(path, deterministic()):
        if message.WhichOneof("result") == "segment":
            count += 1
            first = first or time.monotonic() - started
    total = time.monotonic() - started
    assert count > 20 and first is not None
    assert first < total / 4, (first, total)


async def test_translate_and_batched_are_reported(model_dir, speech_dir):
    server = await _server("packaged:base", model_dir)
    try:
        async with Client(f"127.0.0.1:{server.port}") as client:
            content = (speech_dir / "all.wav").read_bytes()
            batched = await TranscriptionClient(client).transcribe(
                content, pb.TranscriptionOptions(batched=True, batch_size=4))
            info = batched.info
            assert info.batched and info.vad_filter and not info.condition_on_previous_text
            assert info.duration_after_vad_seconds <= info.duration_seconds
            assert speechkit.wer(speechkit.SENTENCES, [s.text for s in batched.segments]) <= 0.30
            translated = await TranscriptionClient(client).transcribe(JFK.read_bytes(), deterministic(
                task=pb.TASK_TRANSLATE, language="en"))
            assert translated.info.task == pb.TASK_TRANSLATE
            assert translated.info.language == "en" and translated.info.language_probability == 1.0
    finally:
        await server._stop_everything(grace=0)


async def test_vad_initial_prompt_and_hotwords_are_accepted(tiny):
    response = await TranscriptionClient(tiny).transcribe(JFK.read_bytes(), deterministic(
        vad_filter=True, initial_prompt="Kennedy's inaugural address.", hotwords="Americans"))
    assert response.info.vad_filter
    assert 0 < response.info.duration_after_vad_seconds <= response.info.duration_seconds
    assert speechkit.wer(speechkit.JFK_TEXT, _text(response.segments)) <= 0.15


# ---- bad input ---------------------------------------------------------------------------

async def test_bad_input_each_with_its_reason_and_the_server_serves_on(tiny, tmp_path):
    flac = JFK.read_bytes()
    cases = {
        b"": ("INVALID_ARGUMENT", "INPUT_EMPTY"),
        # An uncompressed PDF is text: refused before FFmpeg sees it, as playlists are.
        testkit.make_pdf(["a PDF named .mp3"]): ("INVALID_ARGUMENT", "UNSUPPORTED_TYPE"),
        bytes(range(256)) * 40: ("INVALID_ARGUMENT", "AUDIO_UNDECODABLE"),
        flac[: len(flac) // 2]: ("INVALID_ARGUMENT", "AUDIO_TRUNCATED"),
    }
    for content, expected in cases.items():
        with pytest.raises(ClientError) as error:
            await TranscriptionClient(tiny).transcribe(content)
        assert _reason(error) == expected
        path = tmp_path / "upload.mp3"
        path.write_bytes(content)
        with pytest.raises(ClientError) as error:
            await _stream(tiny, path)
        assert _reason(error) == expected
    assert await tiny.health(FULL_NAME) == "SERVING"
    assert (await TranscriptionClient(tiny).transcribe(flac, deterministic())).segments


async def test_truncation_reports_both_durations_or_transcribes_what_decodes(tiny):
    flac = JFK.read_bytes()
    with pytest.raises(ClientError) as error:
        await TranscriptionClient(tiny).transcribe(flac[: len(flac) // 2])
    metadata = error.value.details.metadata
    assert metadata["declared_seconds"] == "11.000"
    assert 4 < float(metadata["decoded_seconds"]) < 7
    assert "11.00 s" in error.value.details.message
    response = await TranscriptionClient(tiny).transcribe(
        flac[: len(flac) // 2], deterministic(allow_truncated=True))
    assert response.info.truncated and response.info.declared_duration_seconds == 11.0
    assert 4 < response.info.duration_seconds < 7
    assert "fellow Americans" in _text(response.segments)


async def test_header_only_and_silence_are_empty_results(tiny, tmp_path):
    path = tmp_path / "empty.wav"
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(16000)
    response = await TranscriptionClient(tiny).transcribe(path.read_bytes())
    assert list(response.segments) == [] and response.info.duration_seconds == 0.0
    assert response.info.model == "packaged:tiny.en"
    messages = await _stream(tiny, path)
    assert [m.WhichOneof("result") for m in messages] == ["info", "summary"]
    quiet = speechkit.encode(speechkit.silence(8), tmp_path / "quiet.mp3", "mp3")
    response = await TranscriptionClient(tiny).transcribe(quiet.read_bytes())
    assert list(response.segments) == [] and response.info.duration_seconds > 7.5


async def test_invalid_options(tiny):
    for options, words in (
        (pb.TranscriptionOptions(task=pb.TASK_TRANSLATE), "cannot translate"),
        (pb.TranscriptionOptions(language="de"), "English-only"),
        (pb.TranscriptionOptions(batched=True, condition_on_previous_text=True), "never conditions"),
        (pb.TranscriptionOptions(beam_size=1000), "beam_size"),
        (pb.TranscriptionOptions(task=7), "unknown task"),
        # Found by the fuzz test: a status quoting a huge value outgrew clients' 8 KiB trailer
        # limit, and the client saw RESOURCE_EXHAUSTED "Stream removed" instead.
        (pb.TranscriptionOptions(language="é" * 5000), "English-only"),
    ):
        with pytest.raises(ClientError) as error:
            await TranscriptionClient(tiny).transcribe(JFK.read_bytes(), options)
        assert _reason(error) == ("INVALID_ARGUMENT", "INVALID_REQUEST")
        assert words in error.value.details.message


async def test_batched_without_vad_on_long_audio_is_refused(tiny, speech_dir):
    options = pb.TranscriptionOptions(batched=True, vad_filter=False)
    with pytest.raises(ClientError) as error:
        await TranscriptionClient(tiny).transcribe((speech_dir / "all.wav").read_bytes(), options)
    assert "turn vad_filter on" in error.value.details.message


async def test_a_stream_must_start_with_its_header(tiny):
    stub = pb_grpc.TranscriptionServiceStub(tiny.channel)

    async def requests():
        yield pb.StreamTranscribeRequest(chunk=b"RIFF")

    with pytest.raises(grpc.aio.AioRpcError) as error:
        async for _ in stub.StreamTranscribe(requests()):
            pass
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


# ---- limits, cancellation, deadlines, overload --------------------------------------------

async def test_limits_are_enforced(model_dir, speech_dir, tmp_path):
    server = await _server("packaged:tiny.en", model_dir, max_duration_seconds=10,
                           max_audio_bytes=400_000)
    try:
        async with Client(f"127.0.0.1:{server.port}") as client:
            long = speechkit.encode(np.load(speech_dir / "all.npy"), tmp_path / "long.mp3", "mp3")
            with pytest.raises(ClientError) as error:
                await TranscriptionClient(client).transcribe(long.read_bytes())
            assert _reason(error) == ("INVALID_ARGUMENT", "AUDIO_TOO_LONG")
            assert "10 s" in error.value.details.message
            with pytest.raises(ClientError) as error:
                await _stream(client, JFK)  # 1.15 MB
            assert _reason(error) == ("INVALID_ARGUMENT", "INPUT_TOO_LARGE")
            assert "SENSORIUM_TRANSCRIPTION__MAX_AUDIO_BYTES" in error.value.details.message
            assert await client.health(FULL_NAME) == "SERVING"
    finally:
        await server._stop_everything(grace=0)


async def test_leaving_a_stream_stops_the_model_within_a_segment(tiny, speech_dir, tmp_path):
    samples = np.tile(np.load(speech_dir / "all.npy"), 8)  # ~4.5 minutes
    path = speechkit.encode(samples, tmp_path / "long.flac", "flac")
    stub = pb_grpc.TranscriptionServiceStub(tiny.channel)

    async def requests():
        yield pb.StreamTranscribeRequest(header=pb.StreamTranscribeHeader(options=deterministic()))
        yield pb.StreamTranscribeRequest(chunk=path.read_bytes())

    call = stub.StreamTranscribe(requests())
    async for message in call:
        if message.WhichOneof("result") == "segment":
            break
    call.cancel()
    # With one worker, the next request runs only once the abandoned one has stopped.
    started = time.monotonic()
    await TranscriptionClient(tiny).transcribe(JFK.read_bytes(), deterministic())
    assert time.monotonic() - started < 6


async def test_a_passed_deadline_is_deadline_exceeded_and_stops_the_model(tiny, speech_dir, tmp_path):
    samples = np.tile(np.load(speech_dir / "all.npy"), 8)
    path = speechkit.encode(samples, tmp_path / "long.flac", "flac")
    async with Client(tiny.target, timeout=3.0) as hurried:
        with pytest.raises(ClientError) as error:
            await TranscriptionClient(hurried).transcribe(path.read_bytes(), deterministic())
    assert error.value.details.code.name == "DEADLINE_EXCEEDED"
    started = time.monotonic()
    await TranscriptionClient(tiny).transcribe(JFK.read_bytes(), deterministic())
    assert time.monotonic() - started < 6


async def test_a_full_queue_answers_resource_exhausted_with_retry(model_dir, speech_dir, tmp_path):
    server = await _server("packaged:tiny.en", model_dir, workers=1, queue_size=1)
    try:
        async with Client(f"127.0.0.1:{server.port}") as client:
            content = (speech_dir / "all.wav").read_bytes()
            results = await asyncio.gather(
                *(TranscriptionClient(client).transcribe(content, deterministic()) for _ in range(5)),
                return_exceptions=True,
            )
            refused = [r for r in results if isinstance(r, ClientError)]
            assert refused, "five calls at once with one worker and a queue of one"
            for error in refused:
                assert (error.details.code.name, error.details.reason) == (
                    "RESOURCE_EXHAUSTED", "OVERLOADED")
                assert error.details.retry_after_seconds and error.details.retry_after_seconds > 0
            assert any(not isinstance(r, BaseException) for r in results)
    finally:
        await server._stop_everything(grace=0)


async def test_two_workers_transcribe_concurrently(model_dir, monkeypatch):
    # When each transcription starts and ends, seen from the model worker threads themselves.
    spans: list[tuple[float, float]] = []
    run = Transcriber.run

    def timed(self, *args, **kwargs):
        started = time.monotonic()
        try:
            return run(self, *args, **kwargs)
        finally:
            spans.append((started, time.monotonic()))

    monkeypatch.setattr(Transcriber, "run", timed)
    server = await _server("packaged:tiny.en", model_dir, workers=2)
    spans.clear()  # the start-up warm-up runs are not the point
    try:
        async with Client(f"127.0.0.1:{server.port}") as client:
            results = await asyncio.gather(
                *(TranscriptionClient(client).transcribe(
                    JFK.read_bytes(), deterministic()) for _ in range(3)))
            assert len({_text(r.segments) for r in results}) == 1
    finally:
        await server._stop_everything(grace=0)
    assert len(spans) == 3
    overlapping = [(a, b) for i, a in enumerate(spans) for b in spans[i + 1:] if a[0] < b[1] and b[0] < a[1]]
    assert overlapping, f"the transcriptions ran one after another: {spans}"


# ---- start-up ----------------------------------------------------------------------------

async def test_an_unprepared_hub_model_stops_production_start_with_the_fix(tmp_path):
    from sensorium.errors import ServiceStartError

    with pytest.raises(ServiceStartError) as error:
        await _server("tiny.en", tmp_path)
    assert "sensorium models transcription" in str(error.value)


async def test_dev_profile_reports_a_missing_model_not_serving(tmp_path):
    server = Server(testkit.test_settings(
        services=["transcription"], device="cpu", model_dir=tmp_path, profile="dev",
        transcription={"model": str(tmp_path / "missing")},
    ))
    await server.start()
    try:
        async with Client(f"127.0.0.1:{server.port}") as client:
            assert await client.health(FULL_NAME) == "NOT_SERVING"
            with pytest.raises(ClientError) as error:
                await TranscriptionClient(client).transcribe(JFK.read_bytes())
            assert error.value.details.code.name == "UNAVAILABLE"
    finally:
        await server._stop_everything(grace=0)


@pytest.mark.parametrize("upload", ["unary", "stream"])
async def test_a_concat_script_naming_another_upload_is_refused_unread(tiny, tmp_path, upload):
    """Issue 22: 40 bytes of `ffconcat` made the server decode a file beside the spooled upload
    (where other callers' uploads sit). Now: UNSUPPORTED_TYPE, and the file is never opened."""
    spool = Path(tempfile.gettempdir())
    victim = spool / f"sensorium-upload-victim-{os.getpid()}-{upload}.wav"
    script = f"ffconcat version 1.0\nfile '{victim.name}'\nfile '{victim.name}'\n".encode()
    path = tmp_path / "innocent.ogg"
    path.write_bytes(script)
    with fifo_trap.trap(victim) as opened:
        with pytest.raises(ClientError) as error:
            await (TranscriptionClient(tiny).transcribe(script) if upload == "unary" else _stream(tiny, path))
        assert _reason(error) == ("INVALID_ARGUMENT", "UNSUPPORTED_TYPE")
        assert not opened.is_set()
    assert await tiny.health(FULL_NAME) == "SERVING"


async def test_decoding_runs_in_a_process_that_is_killed_past_its_time_limit(model_dir, speech_dir,
                                                                             tmp_path):
    samples = np.tile(np.load(speech_dir / "all.npy"), 8)  # ~4.5 minutes
    long = speechkit.encode(samples, tmp_path / "long.flac", "flac").read_bytes()
    server = await _server("packaged:tiny.en", model_dir, workers=1, decode_timeout_seconds=0.05)
    try:
        async with Client(f"127.0.0.1:{server.port}") as client:
            with pytest.raises(ClientError) as error:
                await TranscriptionClient(client).transcribe(long)
            assert _reason(error) == ("INVALID_ARGUMENT", "PROCESSING_LIMIT")
            assert error.value.details.metadata["limit_seconds"] == "0.05"
            assert await client.health(FULL_NAME) == "SERVING"
        restarts = REGISTRY.get_sample_value("sensorium_worker_restarts_total",
                                             {"service": "transcription", "reason": "timeout"})
        assert restarts and restarts >= 1
    finally:
        await server._stop_everything(grace=0)
