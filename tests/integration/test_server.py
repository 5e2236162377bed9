"""The server foundation on a real in-process server: health, reflection, errors, metrics."""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client import REGISTRY

import testkit
from sensorium.client import Client, ClientError, details_from_rpc_error
from sensorium.errors import ServiceStartError
from sensorium.pdf.remote import PdfClient
from sensorium.server import Server

SLOW = "/sensorium.test.Slow/"


def _call(client: Client, method: str):
    return client.channel.unary_unary(SLOW + method)


async def test_health_is_not_serving_at_boot_then_serving():
    server = Server(testkit.test_settings(), services=[testkit.SlowService(start_delay=0.5)])
    starting = asyncio.create_task(server.start())
    while not server.port:  # bound; the service is still loading
        await asyncio.sleep(0.01)
    try:
        async with Client(f"127.0.0.1:{server.port}") as client:
            assert await client.health() == "NOT_SERVING"
            assert await client.health("sensorium.test.Slow") == "NOT_SERVING"
            assert await client.health("liveness") == "SERVING"
            with pytest.raises(grpc.RpcError) as early:  # calls before start: NOT_READY
                await _call(client, "Sleep")(b"0")
            details = details_from_rpc_error(early.value)
            assert (details.code, details.reason) == (grpc.StatusCode.UNAVAILABLE, "NOT_READY")
            await starting
            assert await client.health() == "SERVING"
            assert await client.health("sensorium.test.Slow") == "SERVING"
            with pytest.raises(ClientError) as missing:
                await client.health("no.such.Service")
            assert missing.value.details.code == grpc.StatusCode.NOT_FOUND
    finally:
        await server.shutdown()


async def test_probe_port_serves_only_health(start_server):
    server = await start_server(hosted=[testkit.SlowService()])
    assert server.health_port not in (0, server.port)
    async with Client(f"127.0.0.1:{server.health_port}") as probe:
        assert await probe.health() == "SERVING"
        assert await probe.health("liveness") == "SERVING"
        with pytest.raises(grpc.RpcError) as error:
            await probe.channel.unary_unary(SLOW + "Sleep")(b"0")
        assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_reflection_lists_services_and_can_be_switched_off(start_server):
    async def listed(port: int) -> list[str]:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            request = reflection_pb2.ServerReflectionRequest(list_services="")
            async for response in stub.ServerReflectionInfo(iter([request])):
                return [s.name for s in response.list_services_response.service]
        return []

    on = await start_server(hosted=[testkit.SlowService()])
    names = await listed(on.port)
    assert {"sensorium.test.Slow", "grpc.health.v1.Health"} <= set(names)
    off = await start_server(hosted=[testkit.SlowService()], reflection=False)
    with pytest.raises(grpc.RpcError) as error:
        await listed(off.port)
    assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_domain_error_decodes_as_rich_status(start_server):
    server = await start_server(hosted=[testkit.SlowService()])
    async with Client(f"127.0.0.1:{server.port}") as client:
        with pytest.raises(grpc.RpcError) as error:
            await _call(client, "Fail")(b"OVERLOADED", metadata=(("x-request-id", "r-42"),))
    details = details_from_rpc_error(error.value)
    assert details.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert details.reason == "OVERLOADED"
    assert details.message == "you asked for it"
    assert details.metadata == {"k": "v", "request_id": "r-42"}
    assert details.retry_after_seconds == 2.5


async def test_unexpected_exception_is_internal_with_request_id_and_no_leak(start_server, caplog):
    server = await start_server(hosted=[testkit.SlowService()])
    async with Client(f"127.0.0.1:{server.port}") as client:
        with caplog.at_level(logging.ERROR, logger="sensorium.rpc"):
            with pytest.raises(grpc.RpcError) as error:
                await _call(client, "Crash")(b"")
        # The server keeps serving after it.
        assert await _call(client, "Sleep")(b"0") == b"done"
    details = details_from_rpc_error(error.value)
    assert details.code == grpc.StatusCode.INTERNAL
    assert details.reason == "INTERNAL_ERROR"
    request_id = details.metadata["request_id"]
    assert request_id in details.message
    assert testkit.SlowService.SECRET not in details.message
    assert "boom" not in (error.value.details() or "")
    logged = [r for r in caplog.records if r.message == "unexpected error"]
    assert logged and logged[0].exc_info is not None
    assert logged[0].request_id == request_id


async def test_unhosted_services_and_unknown_methods_answer_unimplemented(start_server):
    server = await start_server(hosted=[testkit.SlowService()])
    async with Client(f"127.0.0.1:{server.port}") as client:
        with pytest.raises(ClientError) as unhosted:
            await PdfClient(client).extract_document(b"%PDF-1.7")
        with pytest.raises(grpc.RpcError) as unknown:
            await _call(client, "NoSuchMethod")(b"")
    assert unhosted.value.details.code == grpc.StatusCode.UNIMPLEMENTED
    assert unhosted.value.details.reason == "NOT_HOSTED"
    assert "does not host the pdf service" in unhosted.value.details.message
    assert "SENSORIUM_SERVICES" in unhosted.value.details.message
    assert unknown.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "NoSuchMethod" in (unknown.value.details() or "")


async def test_dev_profile_serves_what_it_can_and_reports_the_rest(start_server, caplog):
    broken = testkit.SlowService(fail_start="weights missing; run `sensorium models`")
    broken.full_name = "sensorium.test.Broken"  # type: ignore[misc]
    server = await start_server(hosted=[testkit.SlowService(), broken], profile="dev")
    async with Client(f"127.0.0.1:{server.port}") as client:
        assert await client.health() == "SERVING"
        assert await client.health("sensorium.test.Slow") == "SERVING"
        assert await client.health("sensorium.test.Broken") == "NOT_SERVING"
        with pytest.raises(grpc.RpcError) as error:
            await client.channel.unary_unary("/sensorium.test.Broken/Sleep")(b"0")
    details = details_from_rpc_error(error.value)
    assert (details.code, details.reason) == (grpc.StatusCode.UNAVAILABLE, "NOT_READY")
    # The client learns that, and a handle into the log; the reason (paths, library errors)
    # stays in the server's log.
    assert "could not start on this server" in details.message
    assert details.metadata["request_id"] in details.message
    assert "weights missing" not in details.message
    assert any(getattr(r, "why", "") == "weights missing; run `sensorium models`" for r in caplog.records)


async def test_production_start_fails_when_a_service_cannot_start(start_server):
    with pytest.raises(ServiceStartError, match="weights missing"):
        await start_server(hosted=[testkit.SlowService(fail_start="weights missing")])


async def test_metrics_count_exact_changes_and_are_scraped(start_server):
    server = await start_server(hosted=[testkit.SlowService()], metrics_port=0)
    method = SLOW + "Sleep"

    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    ok = value("sensorium_grpc_requests_total", method=method, code="OK")
    bad = value("sensorium_grpc_requests_total", method=SLOW + "Fail", code="INVALID_ARGUMENT")
    seen = value("sensorium_grpc_request_duration_seconds_count", method=method)
    async with Client(f"127.0.0.1:{server.port}") as client:
        for _ in range(3):
            await _call(client, "Sleep")(b"0")
        with pytest.raises(grpc.RpcError):
            await _call(client, "Fail")(b"INPUT_EMPTY")
    assert value("sensorium_grpc_requests_total", method=method, code="OK") == ok + 3
    assert value("sensorium_grpc_requests_total", method=SLOW + "Fail",
                 code="INVALID_ARGUMENT") == bad + 1
    assert value("sensorium_grpc_request_duration_seconds_count", method=method) == seen + 3
    assert value("sensorium_grpc_requests_in_flight", method=method) == 0
    assert value("sensorium_service_ready", service="slow") == 1
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read().decode())
    assert f'sensorium_grpc_requests_total{{code="OK",method="{method}"}}' in body


async def test_one_log_line_per_request(start_server, caplog):
    server = await start_server(hosted=[testkit.SlowService()])
    async with Client(f"127.0.0.1:{server.port}") as client:
        with caplog.at_level(logging.INFO, logger="sensorium.rpc"):
            await _call(client, "Sleep")(b"0", metadata=(("x-request-id", "line-1"),))
    lines = [r for r in caplog.records if getattr(r, "request_id", None) == "line-1"]
    assert len(lines) == 1
    assert lines[0].method == SLOW + "Sleep" and lines[0].code == "OK"
    assert lines[0].request_bytes == 1 and lines[0].response_bytes == 4


async def test_health_stays_fast_while_every_worker_is_busy(start_server):
    service = testkit.SlowService()
    server = await start_server(hosted=[service])
    async with Client(f"127.0.0.1:{server.port}") as client:
        busy = [asyncio.ensure_future(_call(client, "Sleep")(b"2")) for _ in range(32)]
        while service.in_flight < 8:  # the default thread pool is saturated
            await asyncio.sleep(0.01)
        stub = health_pb2_grpc.HealthStub(client.channel)
        latencies = []
        for _ in range(200):
            started = time.perf_counter()
            await stub.Check(health_pb2.HealthCheckRequest(service=""))
            latencies.append(time.perf_counter() - started)
        assert service.finished == 0, "the slow calls must still be running"
        for task in busy:
            task.cancel()
    p99 = statistics.quantiles(latencies, n=100)[98]
    assert p99 < 0.1, f"health p99 {p99 * 1000:.1f} ms while busy"


async def test_graceful_shutdown_drains_in_flight_and_refuses_new_work(start_server):
    service = testkit.SlowService()
    server = await start_server(hosted=[service], shutdown_delay_seconds=0.5,
                                shutdown_grace_seconds=10)
    async with Client(f"127.0.0.1:{server.port}") as client:
        in_flight = asyncio.ensure_future(_call(client, "Sleep")(b"1.5"))
        while service.in_flight == 0:
            await asyncio.sleep(0.01)
        server.request_shutdown("test")
        await asyncio.sleep(0.1)
        assert await client.health() == "NOT_SERVING"  # load balancers see it first
        assert await client.health("liveness") == "SERVING"
        assert await _call(client, "Sleep")(b"0") == b"done"  # still serving during the delay
        await asyncio.sleep(0.6)  # past the delay: draining
        with pytest.raises(grpc.RpcError) as refused:
            await _call(client, "Sleep")(b"0")
        details = details_from_rpc_error(refused.value)
        assert (details.code, details.reason) == (grpc.StatusCode.UNAVAILABLE, "SHUTTING_DOWN")
        assert details.retry_after_seconds and details.retry_after_seconds > 0
        assert await in_flight == b"done"  # the in-flight call finished
    await asyncio.wait_for(server.wait_stopped(), 10)


async def test_messages_over_the_receive_limit_are_refused(start_server):
    server = await start_server(hosted=[testkit.SlowService()], max_receive_message_bytes=1024)
    async with Client(f"127.0.0.1:{server.port}") as client:
        with pytest.raises(grpc.RpcError) as error:
            await _call(client, "Sleep")(b"0" * 2048)
        assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert await _call(client, "Sleep")(b"0") == b"done"


async def test_json_log_lines(start_server, capfd):
    import json

    from sensorium import logs

    logs.configure("INFO", "json")
    try:
        server = await start_server(hosted=[testkit.SlowService()])
        async with Client(f"127.0.0.1:{server.port}") as client:
            await _call(client, "Sleep")(b"0", metadata=(("x-request-id", "json-1"),))
    finally:
        logging.getLogger().handlers.clear()
    lines = [json.loads(line) for line in capfd.readouterr().err.splitlines() if "json-1" in line]
    assert len(lines) == 1
    assert lines[0]["message"] == "rpc" and lines[0]["code"] == "OK"
    assert lines[0]["method"] == SLOW + "Sleep"


@pytest.mark.parametrize("chosen", ["evil id code=OK", "a=b", "x" * 65, 'q"uote', "-leading"])
async def test_an_unsafe_request_id_is_replaced(start_server, caplog, chosen):
    """A caller's x-request-id lands in log lines and error metadata: only a short id of safe
    characters is kept, anything else is replaced by a generated one."""
    server = await start_server(hosted=[testkit.SlowService()])
    caplog.set_level(logging.INFO, logger="sensorium.rpc")
    async with Client(f"127.0.0.1:{server.port}") as client:
        with pytest.raises(grpc.RpcError) as error:
            await _call(client, "Fail")(b"OVERLOADED", metadata=(("x-request-id", chosen),))
    request_id = details_from_rpc_error(error.value).metadata["request_id"]
    assert request_id != chosen and len(request_id) == 16
    (line,) = [r for r in caplog.records if r.getMessage() == "rpc"]
    assert line.request_id == request_id
