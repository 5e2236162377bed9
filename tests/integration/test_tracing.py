"""OpenTelemetry traces on a real server: spans per call and phase, the request id on them,
the caller's trace continued, export over OTLP/gRPC, and nothing imported while tracing is off."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import testkit
from sensorium import tracing
from sensorium.batching import Batcher
from sensorium.budget import ByteBudget
from sensorium.client import Client
from sensorium.settings import TracingSettings

SLOW = "/sensorium.test.Slow/"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    tracing.configure(TracingSettings(enabled=True), exporter=exporter)
    yield exporter
    tracing.shutdown()


async def test_a_call_has_a_server_span_with_the_request_id_and_an_upload_child(start_server, spans):
    service = testkit.SlowService()
    server = await start_server(hosted=[service])
    service.budget = ByteBudget(1 << 30)
    async with Client(f"127.0.0.1:{server.port}") as client:
        metadata = (("x-request-id", "trace-me-1"),
                    ("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-01"))
        assert await client.channel.unary_unary(SLOW + "Hold")(b"0:" + b"x" * 5000,
                                                               metadata=metadata) == b"held 5000"
    by_name = {span.name: span for span in spans.get_finished_spans()}
    assert set(by_name) == {"sensorium.test.Slow/Hold", "sensorium.upload"}
    call, upload = by_name["sensorium.test.Slow/Hold"], by_name["sensorium.upload"]
    assert call.kind == SpanKind.SERVER
    assert call.attributes["sensorium.request_id"] == "trace-me-1"
    assert call.attributes["rpc.system"] == "grpc" and call.attributes["rpc.method"] == "Hold"
    assert call.attributes["rpc.grpc.status_code"] == 0
    # The caller's trace continues: same trace id, the caller's span as parent.
    assert f"{call.context.trace_id:032x}" == TRACE_ID
    assert f"{call.parent.span_id:016x}" == PARENT_ID
    assert upload.parent.span_id == call.context.span_id
    assert upload.context.trace_id == call.context.trace_id
    assert upload.attributes["sensorium.upload.bytes"] == 5000
    assert call.start_time <= upload.start_time <= upload.end_time <= call.end_time


async def test_failed_calls_carry_their_code_and_reason(start_server, spans):
    server = await start_server(hosted=[testkit.SlowService()])
    async with Client(f"127.0.0.1:{server.port}") as client:
        for reason in (b"PDF_UNREADABLE", b"INTERNAL_ERROR"):
            with pytest.raises(grpc.RpcError):
                await client.channel.unary_unary(SLOW + "Fail")(reason)
    bad_input, internal = spans.get_finished_spans()
    assert bad_input.attributes["sensorium.reason"] == "PDF_UNREADABLE"
    assert bad_input.attributes["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert bad_input.status.status_code == StatusCode.UNSET, "the client's mistake, not the server's"
    assert internal.status.status_code == StatusCode.ERROR
    assert len({bad_input.attributes["sensorium.request_id"],
                internal.attributes["sensorium.request_id"]}) == 2


async def test_batched_items_record_queue_wait_and_model_time_in_their_callers_traces(spans):
    def run(items):
        return [item * 2 for item in items]

    batcher: Batcher[int, int] = Batcher("double", run_batch=run, max_batch_size=8, max_wait=0.05)
    batcher.start()

    async def caller(n: int) -> int:
        with tracing.span(f"caller-{n}"):
            return await batcher.submit(n)

    try:
        assert await asyncio.gather(*(caller(n) for n in range(3))) == [0, 2, 4]
    finally:
        await batcher.close()
    finished = spans.get_finished_spans()
    callers = {span.name: span for span in finished if span.name.startswith("caller-")}
    for caller_span in callers.values():
        children = {s.name: s for s in finished
                    if s.parent and s.parent.span_id == caller_span.context.span_id}
        assert set(children) == {"sensorium.queue_wait", "sensorium.model"}
        queued, model = children["sensorium.queue_wait"], children["sensorium.model"]
        assert queued.end_time == model.start_time, "the wait ends when the batch starts"
        assert model.attributes["sensorium.batch_size"] == 3
        assert model.attributes["sensorium.batcher"] == "double"
        assert queued.start_time >= caller_span.start_time


class _Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace collector on loopback that keeps what it is sent."""

    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []

    async def Export(self, request, context):
        self.requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()


async def test_spans_are_exported_over_otlp_when_configured(start_server):
    collector = _Collector()
    otlp = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, otlp)
    port = otlp.add_insecure_port("127.0.0.1:0")
    await otlp.start()
    try:
        server = await start_server(hosted=[testkit.SlowService()], tracing={
            "enabled": True, "otlp_endpoint": f"http://127.0.0.1:{port}", "service_name": "sensorium-test"})
        async with Client(f"127.0.0.1:{server.port}") as client:
            await client.channel.unary_unary(SLOW + "Sleep")(b"0", metadata=(("x-request-id", "otlp-1"),))
        await server.shutdown()  # flushes the batch of spans
    finally:
        await otlp.stop(0)
    spans = [(resource, span) for request in collector.requests for resource in request.resource_spans
             for scope in resource.scope_spans for span in scope.spans]
    assert [span.name for _, span in spans] == ["sensorium.test.Slow/Sleep"]
    resource, span = spans[0]
    attributes = {a.key: a.value.string_value for a in span.attributes}
    assert attributes["sensorium.request_id"] == "otlp-1"
    service_name = {a.key: a.value.string_value for a in resource.resource.attributes}["service.name"]
    assert service_name == "sensorium-test"


def test_tracing_off_imports_no_opentelemetry():
    script = textwrap.dedent("""
        import asyncio, sys
        import testkit
        from sensorium.client import Client
        from sensorium.server import Server

        async def main():
            service = testkit.SlowService()
            server = Server(testkit.test_settings(), services=[service])
            await server.start()
            async with Client(f"127.0.0.1:{server.port}") as client:
                await client.channel.unary_unary("/sensorium.test.Slow/Sleep")(b"0")
            await server.shutdown()
            print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))

        asyncio.run(main())
    """)
    env = testkit.cli_env(PYTHONPATH=str(testkit.REPO / "tests" / "support"))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


async def test_tracing_without_the_packages_stops_start_up(monkeypatch):
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)  # as if not installed
    with pytest.raises(tracing.TracingError) as error:
        tracing.configure(TracingSettings(enabled=True))
    assert "pip install 'sensorium[tracing]'" in str(error.value)
    assert not tracing.enabled()
