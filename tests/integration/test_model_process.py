"""The embedding model in a process of its own: the same vectors, and its faults handled.

Killed while calls are in it or queued behind it: each gets UNAVAILABLE / NOT_READY saying the
model process stopped, health reports NOT_SERVING while a new process loads, then SERVING, and
calls succeed again. Shutdown lets calls in the model finish before it stops the process; a hung
process is killed once the grace period is over. SIGKILL of the whole server leaves neither the
model process nor any shared-memory file behind.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import testkit
import tiny_clip
from sensorium.client import Client, ClientError
from sensorium.embedding.remote import EmbeddingClient
from sensorium.embedding.runtime import EmbeddingRuntime
from sensorium.errors import ServiceStartError
from sensorium.runtimes import Runtimes

pytestmark = pytest.mark.weights

EMBEDDING = "sensorium.embedding.v1.EmbeddingService"


@pytest.fixture(scope="module")
def shapes_model() -> Path:
    return tiny_clip.build()


async def _server(start_server, shapes_model: Path, **embedding: object):
    settings = {"model": f"local-dir:{shapes_model}", "pretrained": "", "model_process": True, **embedding}
    return await start_server(services=["embedding"], embedding=settings, device="cpu", cpus=2)


def _runtime(server) -> EmbeddingRuntime:
    return server.runtimes.of(EmbeddingRuntime)


def _model_pid(server) -> int:
    process = _runtime(server)._process
    assert process is not None and process.pid is not None
    return process.pid


def _image() -> bytes:
    return tiny_clip.png(tiny_clip.draw("circle", "red", np.random.default_rng(0)))


async def _health(port: int) -> str:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=EMBEDDING), timeout=5)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)


async def _until_in_model(server, count: int) -> None:
    batcher = _runtime(server)._batcher
    assert batcher is not None
    deadline = time.monotonic() + 30
    while batcher._in_model < count:
        assert time.monotonic() < deadline, "the calls never reached the model process"
        await asyncio.sleep(0.01)


async def test_the_model_process_gives_the_in_process_models_vectors(start_server, shapes_model):
    separate = await _server(start_server, shapes_model)
    inline = await _server(start_server, shapes_model, model_process=False)
    assert _runtime(inline)._process is None and _model_pid(separate) != os.getpid()
    texts = ["a red circle", "a blue square", "a green triangle " * 10]
    images = [_image(), tiny_clip.png(tiny_clip.draw("square", "blue", np.random.default_rng(1)))]
    answers = []
    for server in (separate, inline):
        async with Client(f"127.0.0.1:{server.port}", timeout=60) as client:
            singles = await asyncio.gather(*(EmbeddingClient(client).embed_texts([t]) for t in texts))
            many = await EmbeddingClient(client).embed_images(images)
            answers.append(([r.results[0].vector.values for r in singles],
                            [r.vector.values for r in many.results]))
    for got, expected in zip(answers[0], answers[1], strict=True):
        np.testing.assert_allclose(np.array(got), np.array(expected), rtol=1e-5, atol=1e-6)


async def test_a_killed_model_process_fails_its_calls_clearly_and_comes_back(start_server, shapes_model):
    server = await _server(start_server, shapes_model)
    first = _model_pid(server)
    async with Client(f"127.0.0.1:{server.port}", timeout=60) as client:
        before = (await EmbeddingClient(client).embed_texts(["a red circle"])).results[0].vector.values
        os.kill(first, signal.SIGSTOP)  # the next call stays in the model until the kill
        in_flight = asyncio.ensure_future(EmbeddingClient(client).embed_texts(["a blue square"]))
        await _until_in_model(server, 1)
        os.kill(first, signal.SIGKILL)
        with pytest.raises(ClientError) as failed:
            await in_flight
        details = failed.value.details
        assert (details.code, details.reason) == (grpc.StatusCode.UNAVAILABLE, "NOT_READY")
        assert "model process stopped" in details.message and details.retry_after_seconds == 5.0

        deadline = time.monotonic() + 10
        while await _health(server.port) != "NOT_SERVING":  # while a new process loads
            assert time.monotonic() < deadline, "health never said NOT_SERVING"
            await asyncio.sleep(0.01)
        with pytest.raises(ClientError) as refused:
            await EmbeddingClient(client).embed_texts(["a green triangle"])
        assert refused.value.details.reason == "NOT_READY"
        deadline = time.monotonic() + 120
        while await _health(server.port) != "SERVING":
            assert time.monotonic() < deadline, "the model process was not restarted"
            await asyncio.sleep(0.1)
        assert _model_pid(server) != first
        again = (await EmbeddingClient(client).embed_texts(["a red circle"])).results[0].vector.values
    np.testing.assert_allclose(again, before, rtol=1e-5, atol=1e-6)


async def test_shutdown_lets_calls_in_the_model_finish_then_stops_the_process(start_server, shapes_model):
    server = await _server(start_server, shapes_model)
    pid = _model_pid(server)
    async with Client(f"127.0.0.1:{server.port}", timeout=60) as client:
        os.kill(pid, signal.SIGSTOP)
        calls = [asyncio.ensure_future(EmbeddingClient(client).embed_texts([f"a red circle number {i}"]))
                 for i in range(3)]
        await _until_in_model(server, 1)
        deadline = time.monotonic() + 30
        while server.state.in_flight < len(calls):  # the others wait in the queue
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        stopping = asyncio.ensure_future(server.shutdown())
        await asyncio.sleep(0.5)
        assert not stopping.done()  # waiting for the calls in the model
        os.kill(pid, signal.SIGCONT)
        results = await asyncio.gather(*calls)
        await stopping
    assert all(not r.results[0].HasField("error") for r in results)
    assert not Path(f"/proc/{pid}").exists()


async def test_every_call_waiting_on_a_killed_model_process_gets_not_ready(start_server, shapes_model):
    """The batch in the model and the calls queued behind it: each gets UNAVAILABLE / NOT_READY
    (never UNKNOWN or INTERNAL, never a hang), and the service serves again afterwards."""
    server = await _server(start_server, shapes_model, max_batch_size=2, max_wait_ms=0)
    pid = _model_pid(server)
    async with Client(f"127.0.0.1:{server.port}", timeout=60) as client:
        os.kill(pid, signal.SIGSTOP)
        calls = [asyncio.ensure_future(EmbeddingClient(client).embed_texts([f"a red circle {i}"]))
                 for i in range(6)]
        await _until_in_model(server, 1)
        deadline = time.monotonic() + 30
        while server.state.in_flight < len(calls):  # the others wait in the queue
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        os.kill(pid, signal.SIGKILL)
        outcomes = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 30)
        assert all(isinstance(outcome, ClientError) for outcome in outcomes), outcomes
        assert {(o.details.code, o.details.reason) for o in outcomes} == {
            (grpc.StatusCode.UNAVAILABLE, "NOT_READY")}
        deadline = time.monotonic() + 120
        while await _health(server.port) != "SERVING":
            assert time.monotonic() < deadline, "the model process was not restarted"
            await asyncio.sleep(0.1)
        result = await EmbeddingClient(client).embed_texts(["a red circle"])
    assert not result.results[0].HasField("error")


async def test_shutdown_past_the_grace_stops_a_hung_model_process(start_server, shapes_model):
    """A model process that never answers (stopped here) cannot hold shutdown: past the grace
    period the call in it fails, the process is killed, and the server stops."""
    settings = {"model": f"local-dir:{shapes_model}", "pretrained": "", "model_process": True}
    server = await start_server(services=["embedding"], embedding=settings, device="cpu", cpus=2,
                                shutdown_grace_seconds=1.0)
    pid = _model_pid(server)
    async with Client(f"127.0.0.1:{server.port}", timeout=60) as client:
        os.kill(pid, signal.SIGSTOP)
        call = asyncio.ensure_future(EmbeddingClient(client).embed_texts(["a red circle"]))
        await _until_in_model(server, 1)
        started = time.monotonic()
        await asyncio.wait_for(server.shutdown(), 30)
        assert time.monotonic() - started < 15
        with pytest.raises(ClientError) as failed:
            await asyncio.wait_for(call, 10)
    # grpc's stop() ends the call when the grace period is over: UNAVAILABLE, retry elsewhere.
    assert failed.value.details.code == grpc.StatusCode.UNAVAILABLE
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and _state(pid) != "Z":
        assert time.monotonic() < deadline, "the hung model process outlived shutdown"
        await asyncio.sleep(0.05)


def _shared_memory() -> set[str]:
    return set(os.listdir("/dev/shm")) if Path("/dev/shm").is_dir() else set()


def test_sigkill_of_the_server_leaves_no_model_process_and_no_shared_memory(shapes_model, tmp_path):
    before = _shared_memory()
    env = testkit.cli_env(SENSORIUM_SERVICES="embedding", SENSORIUM_DEVICE="cpu",
                          SENSORIUM_EMBEDDING__MODEL=f"local-dir:{shapes_model}",
                          SENSORIUM_EMBEDDING__PRETRAINED="", SENSORIUM_EMBEDDING__MODEL_PROCESS="true")
    process = subprocess.Popen([*testkit.SENSORIUM, "serve"], stderr=subprocess.PIPE, text=True,
                               env={"SENSORIUM_ADDRESS": "127.0.0.1:0", "SENSORIUM_HEALTH_PORT": "0",
                                    "SENSORIUM_METRICS_PORT": "-1", **env})
    assert process.stderr is not None
    child = None
    log = []
    try:
        for line in process.stderr:
            log.append(line)
            if match := re.search(r"embedding model process ready pid=(\d+)", line):
                child = int(match.group(1))
            if " sensorium.server ready" in line:
                break
        assert child is not None, "".join(log)
        # The batches travel through an anonymous shared-memory file mapped by both processes;
        # neither maps anything from /dev/shm, where a SIGKILL would leave it.
        for pid in (process.pid, child):
            maps = Path(f"/proc/{pid}/maps").read_text()
            assert "memfd:sensorium-embedding" in maps and "/dev/shm/" not in maps
    finally:
        process.kill()
        process.wait(30)
    deadline = time.monotonic() + 30
    while Path(f"/proc/{child}").exists() and _state(child) != "Z":
        assert time.monotonic() < deadline, "the model process outlived its server"
        time.sleep(0.1)
    # Other programs on this machine may come and go in /dev/shm; none of it may look like
    # Python's, torch's or ours.
    new = _shared_memory() - before
    assert not [name for name in new if name.startswith(("psm_", "torch_", "sensorium"))], new


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


async def test_weights_other_than_named_stop_the_service_and_its_model_process(shapes_model):
    """The pin check runs on the facts the model process reports; the process does not stay."""
    settings = testkit.test_settings(cpus=1, device="cpu", embedding={
        "model": f"local-dir:{shapes_model}", "pretrained": "", "model_process": True,
        "weights_sha256": "ab" * 32})
    runtimes = Runtimes(settings, ["embedding"])
    children_before = _children()
    with pytest.raises(ServiceStartError) as refused:
        await runtimes.start("embedding")
    await runtimes.close()
    assert "SENSORIUM_EMBEDDING__WEIGHTS_SHA256" in str(refused.value)
    assert _children() <= children_before


def _children() -> set[int]:
    import psutil

    return {child.pid for child in psutil.Process().children() if child.status() != psutil.STATUS_ZOMBIE}
