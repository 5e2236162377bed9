"""Each runtime used directly, as the index job and the in-process CLI use them: no server, no
gRPC. Real engines on small models (packaged tiny.en Whisper, the project-trained tiny CLIP),
and the CUDA-to-CPU fallback at warm-up by injection."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import REGISTRY

import speechkit
import testkit
import tiny_clip
from sensorium.device import DeviceGate, DevicePlan
from sensorium.embedding.runtime import EmbeddingRuntime
from sensorium.errors import Reason, SensoriumError, ServiceStartError
from sensorium.pdf.extractor import DocumentInfo, ExtractOptions, PageResult
from sensorium.pdf.runtime import PdfRuntime
from sensorium.runtimes import Runtimes
from sensorium.transcription.runtime import TranscriptionRuntime
from sensorium.transcription.transcriber import Info, RequestedOptions, Segment

CUDA_LIBRARY_FAILURE = "Could not load library libcublas.so.12. Error: cannot open shared object file"


def _cuda_gate(requested: str) -> DeviceGate:
    """A device decision that found a usable GPU (as the probes do when the driver is there
    but a CUDA library only fails at the first kernel)."""
    def resolve(_requested, *, libraries, cpus):
        return DevicePlan("cuda", "fake GPU", "float16", "float16", cpus)

    return DeviceGate(requested, ["torch", "ctranslate2"], resolve=resolve)


# --- PDF ----------------------------------------------------------------------------------------


async def _documents(outcome: str) -> float:
    return REGISTRY.get_sample_value("sensorium_pdf_documents_total", {"outcome": outcome}) or 0.0


async def test_pdf_runtime_extracts_a_file_in_place(tmp_path: Path):
    path = tmp_path / "two.pdf"
    path.write_bytes(testkit.make_pdf(["first page", "second page"], title="Runtime"))
    async with Runtimes(testkit.test_settings(cpus=1), ["pdf"]) as runtimes:
        results = [r async for r in runtimes.of(PdfRuntime).extract(path, ExtractOptions())]
        with pytest.raises(SensoriumError) as error:
            _ = [r async for r in runtimes.of(PdfRuntime).extract(tmp_path / "missing.pdf", ExtractOptions())]
    info, *batches = results
    assert isinstance(info, DocumentInfo) and info.title == "Runtime" and info.page_count == 2
    pages = [item for batch in batches for item in batch if isinstance(item, PageResult)]
    assert [(p.page_number, p.text.strip()) for p in pages] == [(1, "first page"), (2, "second page")]
    assert error.value.reason is Reason.PDF_UNREADABLE and "No such file" in error.value.message


async def test_pdf_runtime_limit_errors_name_their_setting(tmp_path: Path):
    path = tmp_path / "three.pdf"
    path.write_bytes(testkit.make_pdf(["a", "b", "c"]))
    async with Runtimes(testkit.test_settings(cpus=1, pdf={"max_pages": 2}), ["pdf"]) as runtimes:
        before = await _documents("PDF_TOO_MANY_PAGES")
        with pytest.raises(SensoriumError) as error:
            _ = [r async for r in runtimes.of(PdfRuntime).extract(path, ExtractOptions())]
    assert error.value.reason is Reason.PDF_TOO_MANY_PAGES and error.value.setting == "pdf.max_pages"
    assert await _documents("PDF_TOO_MANY_PAGES") == before + 1


async def test_a_failure_that_is_not_a_cancellation_is_not_booked_as_cancelled(tmp_path: Path, monkeypatch):
    path = tmp_path / "one.pdf"
    path.write_bytes(testkit.make_pdf(["x"]))
    async with Runtimes(testkit.test_settings(cpus=1), ["pdf"]) as runtimes:
        pool = runtimes.of(PdfRuntime).pool

        async def broken(*args, **kwargs):
            raise RuntimeError("a bug")
            yield  # pragma: no cover

        monkeypatch.setattr(pool, "extract", broken)
        cancelled, internal = await _documents("cancelled"), await _documents("INTERNAL_ERROR")
        with pytest.raises(RuntimeError):
            _ = [r async for r in runtimes.of(PdfRuntime).extract(path, ExtractOptions())]
        assert await _documents("INTERNAL_ERROR") == internal + 1
        assert await _documents("cancelled") == cancelled


# --- transcription ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sentence(tmp_path_factory) -> Path:
    return speechkit.espeak(speechkit.SENTENCES[0], tmp_path_factory.mktemp("speech") / "fox.wav")


@pytest.mark.weights
async def test_transcription_runtime_streams_info_then_segments(model_dir: Path, sentence: Path):
    settings = testkit.test_settings(cpus=1, device="cpu", model_dir=model_dir,
                                     transcription={"model": "packaged:tiny.en"})
    async with Runtimes(settings, ["transcription"]) as runtimes:
        runtime = runtimes.of(TranscriptionRuntime)
        options = runtime.resolve_options(RequestedOptions(temperatures=(0.0,),
                                                           condition_on_previous_text=False))
        decoded = await runtime.decode(await asyncio.to_thread(sentence.read_bytes))
        pieces = [p async for p in runtime.transcribe(decoded, options)]
        with pytest.raises(SensoriumError) as refused:
            runtime.resolve_options(RequestedOptions(language="de"))
    info, *segments = pieces
    assert isinstance(info, Info) and info.language == "en" and info.model == "packaged:tiny.en"
    assert all(isinstance(s, Segment) for s in segments)
    text = " ".join(s.text for s in segments if isinstance(s, Segment))
    assert speechkit.wer(speechkit.SENTENCES[0], text) <= 0.2
    assert refused.value.reason is Reason.INVALID_REQUEST


def _wav_declaring(seconds: float, actual: float) -> bytes:
    """A 16 kHz mono WAV whose header declares `seconds` of audio but holds `actual` seconds."""
    import struct

    rate, data = 16000, bytes(int(actual * 16000) * 2)
    declared = int(seconds * rate) * 2
    return (b"RIFF" + struct.pack("<I", 36 + declared) + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
            + b"data" + struct.pack("<I", declared) + data)


@pytest.mark.weights
async def test_decoded_audio_is_charged_to_the_budget_before_it_is_decoded(model_dir: Path):
    """Decoded samples take 64 KB a second (4 h: 922 MB): 20 minutes of audio (77 MB decoded)
    are refused before decoding when the budget holds 64 MiB; a minute is decoded."""
    settings = testkit.test_settings(cpus=1, device="cpu", model_dir=model_dir,
                                     max_upload_bytes_in_flight=64 * 1024 * 1024,
                                     transcription={"model": "packaged:tiny.en"})
    async with Runtimes(settings, ["transcription"]) as runtimes:
        runtime = runtimes.of(TranscriptionRuntime)
        with pytest.raises(SensoriumError) as refused:
            await runtime.decode(_wav_declaring(20 * 60, actual=20 * 60))
        assert refused.value.reason is Reason.OVERLOADED
        decoded = await runtime.decode(_wav_declaring(60, actual=60), allow_truncated=True)
        assert abs(decoded.duration - 60) < 0.1
        assert runtime.budget.used == 0


@pytest.mark.weights
async def test_transcription_falls_back_to_the_cpu_when_a_cuda_library_fails_at_warm_up(
    model_dir: Path, sentence: Path
):
    settings = testkit.test_settings(cpus=1, device="auto", model_dir=model_dir,
                                     transcription={"model": "packaged:tiny.en"})
    tried: list[str] = []
    runtime: TranscriptionRuntime | None = None

    def load(plan: DevicePlan):
        tried.append(plan.device)
        if plan.is_cuda:
            raise RuntimeError(CUDA_LIBRARY_FAILURE)
        assert runtime is not None
        return runtime._load_engine(plan)

    def factory(context):
        nonlocal runtime
        runtime = TranscriptionRuntime(context, load=load)
        return runtime

    runtimes = Runtimes(settings, ["transcription"], factories={"transcription": factory},
                        device=_cuda_gate("auto"))
    async with runtimes:
        assert tried == ["cuda", "cpu"]
        assert runtimes.of(TranscriptionRuntime).plan is not None
        assert runtimes.of(TranscriptionRuntime).plan.device == "cpu"
        assert "CUDA failed at warm-up" in runtimes.of(TranscriptionRuntime).plan.reason
        runtime = runtimes.of(TranscriptionRuntime)
        decoded = await runtime.decode(sentence)
        options = runtime.resolve_options(RequestedOptions())
        pieces = [p async for p in runtime.transcribe(decoded, options)]
        assert any(isinstance(p, Segment) for p in pieces)


async def test_under_device_cuda_a_cuda_library_failure_stops_the_start():
    def load(plan: DevicePlan):
        raise RuntimeError(CUDA_LIBRARY_FAILURE)

    settings = testkit.test_settings(cpus=1, device="cuda", transcription={"model": "packaged:tiny.en"})
    runtimes = Runtimes(settings, ["transcription"], device=_cuda_gate("cuda"),
                        factories={"transcription": lambda c: TranscriptionRuntime(c, load=load)})
    with pytest.raises(ServiceStartError, match="libcublas"):
        await runtimes.start_all()


# --- embedding ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shapes_model() -> Path:
    return tiny_clip.build()


def _embedding_settings(shapes_model: Path, **embedding: object):
    return testkit.test_settings(
        cpus=1, device="cpu",
        embedding={"model": f"local-dir:{shapes_model}", "pretrained": "", **embedding},
    )


@pytest.mark.weights
async def test_embedding_runtime_gives_normalized_vectors_and_per_item_errors(shapes_model: Path):
    rng = np.random.default_rng(3)
    red_circle = tiny_clip.png(tiny_clip.draw("circle", "red", rng))
    async with Runtimes(_embedding_settings(shapes_model), ["embedding"]) as runtimes:
        runtime = runtimes.of(EmbeddingRuntime)
        images = await runtime.embed_images([red_circle, b"not an image"])
        texts = await runtime.embed_texts(["a red circle", " ", "a blue square " * 20])
        raw = await runtime.embed_texts(["a red circle"], normalize=False)
        captions = [tiny_clip.caption(s, c) for s, c in tiny_clip.CLASSES]
        rows = (await runtime.score([red_circle], captions)).rows
        count = runtime.count_tokens("a red circle")
        with pytest.raises(SensoriumError) as too_many:
            await runtime.embed_texts(["x"] * 300)
    good, bad = images
    assert good.vector is not None and abs(float(np.linalg.norm(good.vector)) - 1) < 1e-5
    assert good.vector.shape == (runtime.space.dimension,) and (good.width, good.height) == (32, 32)
    assert bad.vector is None and bad.error is not None and bad.error.reason is Reason.IMAGE_UNDECODABLE
    assert texts[1].error is not None and texts[1].error.reason is Reason.INPUT_EMPTY
    assert texts[2].truncated and texts[2].token_count > runtime.context_length
    assert raw[0].vector is not None and texts[0].vector is not None
    assert np.allclose(raw[0].vector / np.linalg.norm(raw[0].vector), texts[0].vector, atol=1e-6)
    best = int(np.argmax(rows[0].probabilities))
    assert tiny_clip.CLASSES[best] == ("circle", "red")
    assert count == 5  # start, "a", "red", "circle", end
    assert too_many.value.reason is Reason.INVALID_REQUEST
    assert too_many.value.setting == "embedding.max_items_per_request"


@pytest.mark.weights
async def test_embedding_falls_back_to_the_cpu_when_a_cuda_library_fails_at_warm_up(shapes_model: Path):
    tried: list[str] = []
    holder: dict[str, EmbeddingRuntime] = {}

    def load(plan: DevicePlan):
        tried.append(plan.device)
        if plan.is_cuda:
            raise RuntimeError(CUDA_LIBRARY_FAILURE)
        return holder["runtime"]._load_engine(plan)

    def factory(context):
        holder["runtime"] = EmbeddingRuntime(context, load=load)
        return holder["runtime"]

    settings = _embedding_settings(shapes_model).model_copy(update={"device": "auto"})
    runtimes = Runtimes(settings, ["embedding"], factories={"embedding": factory},
                        device=_cuda_gate("auto"))
    async with runtimes:
        runtime = runtimes.of(EmbeddingRuntime)
        assert tried == ["cuda", "cpu"]
        assert runtime.plan is not None and runtime.plan.device == "cpu"
        (outcome,) = await runtime.embed_texts(["a green triangle"])
    assert outcome.vector is not None


@pytest.mark.weights
async def test_cuda_out_of_memory_is_not_a_reason_to_fall_back(shapes_model: Path):
    def load(plan: DevicePlan):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    settings = _embedding_settings(shapes_model).model_copy(update={"device": "auto"})
    runtimes = Runtimes(settings, ["embedding"], device=_cuda_gate("auto"),
                        factories={"embedding": lambda c: EmbeddingRuntime(c, load=load)})
    with pytest.raises(ServiceStartError, match="out of memory"):
        await runtimes.start_all()


@pytest.mark.weights
async def test_a_caller_that_goes_away_leaves_no_work_behind(shapes_model: Path):
    async with Runtimes(_embedding_settings(shapes_model, max_wait_ms=200.0), ["embedding"]) as runtimes:
        runtime = runtimes.of(EmbeddingRuntime)
        task = asyncio.ensure_future(runtime.embed_texts(["a red circle"] * 8))
        await asyncio.sleep(0.05)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert runtime._batcher is not None and runtime._batcher.queue_depth == 0


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height and whose pixel data is missing: decoding it
    fails, so an answer other than IMAGE_UNDECODABLE shows it was never decoded."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * 64)  # far too few rows
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


@pytest.mark.weights
async def test_a_big_images_memory_is_charged_before_it_is_decoded(shapes_model: Path):
    """A 100 MP image decodes to ~400 MB (800 MB with a converted copy): the byte budget is
    charged from the header, before decoding, and refuses what does not fit."""
    settings = _embedding_settings(shapes_model).model_copy(
        update={"max_upload_bytes_in_flight": 256 * 1024 * 1024})
    async with Runtimes(settings, ["embedding"]) as runtimes:
        runtime = runtimes.of(EmbeddingRuntime)
        with pytest.raises(SensoriumError) as error:
            await runtime.embed_image(_png_header(10_000, 10_000))
        assert error.value.reason == Reason.OVERLOADED
        assert runtime.budget.used == 0
        # A header that fits the budget is decoded (and found to have no pixel data).
        (small,) = await runtime.embed_images([_png_header(1000, 1000)])
        assert small.error is not None and small.error.reason == Reason.IMAGE_UNDECODABLE
        assert runtime.budget.used == 0


@pytest.mark.weights
async def test_whisper_weights_other_than_named_stop_the_service(model_dir: Path):
    settings = testkit.test_settings(cpus=1, device="cpu", model_dir=model_dir, transcription={
        "model": "packaged:tiny.en", "weights_sha256": "ab" * 32})
    runtimes = Runtimes(settings, ["transcription"])
    with pytest.raises(ServiceStartError) as refused:
        await runtimes.start("transcription")
    await runtimes.close()
    assert "SENSORIUM_TRANSCRIPTION__WEIGHTS_SHA256=1a5afae06a4db91c" in str(refused.value)
