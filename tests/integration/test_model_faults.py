"""Faults of the model services on a real server: GPU out of memory (injected on the CPU),
callers that cancel (their decoding stops, their upload is removed), and overload (refused in
milliseconds with a retry delay, health still answers, throughput recovers)."""

from __future__ import annotations

import asyncio
import gc
import multiprocessing.util
import os
import tempfile
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import torch
from grpc_health.v1 import health_pb2, health_pb2_grpc

import speechkit
import tiny_clip
from sensorium.client import Client, ClientError
from sensorium.embedding.remote import EmbeddingClient
from sensorium.embedding.runtime import EmbeddingRuntime
from sensorium.transcription.runtime import TranscriptionRuntime
from sensorium.transcription.v1 import transcription_service_pb2 as transcription_pb
from sensorium.transcription.v1 import transcription_service_pb2_grpc as transcription_grpc

pytestmark = pytest.mark.weights


@pytest.fixture(scope="module")
def shapes_model() -> Path:
    return tiny_clip.build()


@pytest.fixture
def uploads(tmp_path, monkeypatch) -> Path:
    """The directory this test's server spools uploads into (the process's temp dir)."""
    directory = tmp_path / "spool"
    directory.mkdir()
    # multiprocessing keeps the forkserver's socket in its own temp dir, chosen once per process:
    # fix it before the patch, or the decoder pools' forkserver would live in this test's folder.
    multiprocessing.util.get_temp_dir()
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    return directory


async def _embedding_server(start_server, shapes_model: Path, **embedding: object):
    settings = {"model": f"local-dir:{shapes_model}", "pretrained": "", **embedding}
    return await start_server(services=["embedding"], embedding=settings, device="cpu", cpus=2)


def _images(count: int) -> list[bytes]:
    rng = np.random.default_rng(0)
    return [tiny_clip.png(tiny_clip.draw("circle", "red", rng)) for _ in range(count)]


# --- GPU out of memory --------------------------------------------------------------------------


async def test_cuda_out_of_memory_splits_the_batch_and_every_caller_gets_its_vector(
    start_server, shapes_model
):
    server = await _embedding_server(start_server, shapes_model, max_wait_ms=300.0, max_batch_size=8)
    engine = server.runtimes.of(EmbeddingRuntime).model
    real, sizes = engine.encode, []

    def encode(items):
        sizes.append(len(items))
        if len(items) > 2:  # only pairs fit on this "GPU"
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(items)

    engine.encode = encode
    async with Client(f"127.0.0.1:{server.port}", timeout=60) as client:
        results = await asyncio.gather(*(EmbeddingClient(client).embed_images(
            [image]) for image in _images(8)))
    assert all(not r.results[0].HasField("error") for r in results)
    assert sizes[0] == 8 and max(sizes[1:]) <= 4 and sum(s for s in sizes if s <= 2) == 8


async def test_one_item_too_large_for_the_gpu_is_resource_exhausted_with_a_retry_delay(
    start_server, shapes_model
):
    server = await _embedding_server(start_server, shapes_model)
    engine = server.runtimes.of(EmbeddingRuntime).model

    def encode(items):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    engine.encode = encode
    async with Client(f"127.0.0.1:{server.port}", timeout=60) as client:
        with pytest.raises(ClientError) as refused:
            await EmbeddingClient(client).embed_images(_images(1))
    details = refused.value.details
    assert (details.code, details.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "GPU_OUT_OF_MEMORY")
    assert details.retry_after_seconds == 2.0


# --- callers that go away -------------------------------------------------------------------------


async def test_a_stream_cancelled_mid_upload_leaves_no_spool_file(start_server, uploads, tmp_path):
    server = await start_server(services=["transcription"], device="cpu", cpus=1, model_dir=tmp_path,
                                transcription={"model": "packaged:tiny.en"})
    stub = transcription_grpc.TranscriptionServiceStub(grpc.aio.insecure_channel(f"127.0.0.1:{server.port}"))
    never = asyncio.Event()

    async def requests():
        yield transcription_pb.StreamTranscribeRequest(header=transcription_pb.StreamTranscribeHeader())
        yield transcription_pb.StreamTranscribeRequest(chunk=b"RIFF" + bytes(200_000))
        await never.wait()  # the client stalls mid-upload, then gives up

    call = stub.StreamTranscribe(requests())
    deadline = time.monotonic() + 10
    while not list(uploads.glob("sensorium-upload-*")):
        assert time.monotonic() < deadline, "the upload was never spooled"
        await asyncio.sleep(0.02)
    assert server.runtimes.budget.used > 0
    call.cancel()
    deadline = time.monotonic() + 10
    while list(uploads.glob("sensorium-upload-*")) or server.runtimes.budget.used:
        assert time.monotonic() < deadline, "the spool file or its bytes outlived the call"
        await asyncio.sleep(0.02)


async def test_cancelling_while_the_audio_decodes_stops_the_decoding(start_server, tmp_path):
    """Decoding runs in a decoder process: a caller that leaves while its file decodes has that
    process killed (and replaced), and its budget given back."""
    server = await start_server(services=["transcription"], device="cpu", cpus=1, model_dir=tmp_path,
                                transcription={"model": "packaged:tiny.en"})
    runtime = server.runtimes.of(TranscriptionRuntime)
    # A file that never ends: a FIFO whose writer holds it open and writes nothing, so the
    # decoder blocks reading it, as on hours of audio.
    fifo = tmp_path / "endless.wav"
    os.mkfifo(fifo)
    opened, release = threading.Event(), threading.Event()

    def writer() -> None:
        fd = os.open(fifo, os.O_WRONLY)
        opened.set()
        release.wait(30)
        os.close(fd)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    before = _restarts("cancelled")
    call = asyncio.ensure_future(runtime.decode(fifo))
    assert await asyncio.to_thread(opened.wait, 20), "the decoder never opened the file"
    cancelled_at = time.monotonic()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert _restarts("cancelled") == before + 1, "the decoder process was not stopped"
    assert time.monotonic() - cancelled_at < 5
    release.set()
    thread.join(5)
    assert server.runtimes.budget.used == 0
    # The pool replaced the process: the next file decodes.
    decoded = await runtime.decode(speechkit.write_wav(speechkit.silence(1.0), tmp_path / "q.wav"))
    assert abs(decoded.duration - 1.0) < 0.05


def _restarts(reason: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("sensorium_worker_restarts_total",
                                     {"service": "transcription", "reason": reason}) or 0.0


# --- overload ---------------------------------------------------------------------------------


BATCH_SECONDS = 0.5


async def test_overload_is_refused_fast_health_answers_and_throughput_recovers(start_server, shapes_model):
    server = await _embedding_server(start_server, shapes_model, max_batch_size=2, queue_size=4,
                                     max_wait_ms=0.0)
    engine = server.runtimes.of(EmbeddingRuntime).model
    real = engine.encode

    def slow(items):  # a model that needs 0.5 s a batch: the queue fills at once
        time.sleep(BATCH_SECONDS)
        return real(items)

    engine.encode = slow
    target = f"127.0.0.1:{server.port}"
    images = _images(1)
    async with Client(target, timeout=60) as client, grpc.aio.insecure_channel(
            f"127.0.0.1:{server.health_port}") as probe:
        health = health_pb2_grpc.HealthStub(probe)

        async def timed_call():
            started = time.perf_counter()
            try:
                await EmbeddingClient(client).embed_images(images)
                return "ok", time.perf_counter() - started, None
            except ClientError as error:
                return "refused", time.perf_counter() - started, error.details

        async def timed_health():
            started = time.perf_counter()
            await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
            return time.perf_counter() - started

        gc.collect()  # earlier tests' garbage would be collected on this loop mid-measurement
        flood = [asyncio.ensure_future(timed_call()) for _ in range(60)]
        await asyncio.sleep(0.05)
        health_seconds = await timed_health()
        results = await asyncio.gather(*flood)
        depth = server.runtimes.of(EmbeddingRuntime)._batcher.queue_depth  # type: ignore[union-attr]
        refused = [r for r in results if r[0] == "refused"]
        served = [r for r in results if r[0] == "ok"]
        assert refused and served
        for _, _seconds, details in refused:
            assert (details.code, details.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "OVERLOADED")
            assert details.retry_after_seconds > 0
        # Refusals do not wait for the model: a refusal that queued would take at least one
        # batch. A full-suite run here measured a 59 ms median; client and server share this process
        # (and a 2-core VM with whatever else runs), so the bound is half a batch, not a latency.
        assert sorted(seconds for _, seconds, _ in refused)[len(refused) // 2] < BATCH_SECONDS / 2
        assert health_seconds < 1.0
        assert depth == 0
        # Memory stays bounded by the queue: nothing refused is held.
        assert server.runtimes.budget.used == 0
        # Load drops: calls one at a time all succeed again.
        engine.encode = real
        for _ in range(5):
            assert (await timed_call())[0] == "ok"
