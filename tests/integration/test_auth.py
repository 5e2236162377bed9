"""Bearer tokens and per-client limits on a real in-process server."""

from __future__ import annotations

import asyncio
import logging
import os

import grpc
import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

import certs
import testkit
from sensorium.auth import label_of
from sensorium.budget import ByteBudget
from sensorium.client import Client, ClientError, PlaintextTokenError, details_from_rpc_error
from sensorium.embedding.remote import EmbeddingClient

SLOW = "/sensorium.test.Slow/"
# Tokens as an operator makes them (`openssl rand -hex 32`).
ALL = "9f1c2e7d4b6a8c0e1f3a5b7c9d2e4f6a8b0c1d3e5f7a9b2c4d6e8f0a1b3c5d7e"
PDF_ONLY = "0a2b4c6d8e1f3a5b7c9d0e2f4a6b8c1d3e5f7a9b0c2d4e6f8a1b3c5d7e9f0a2b"


def _tokens(tmp_path, text: str):
    path = tmp_path / "tokens"
    path.write_text(text)
    path.chmod(0o600)
    return path


async def _call(client: Client, method: str, request: bytes = b"0", **kwargs) -> bytes:
    return await client.channel.unary_unary(SLOW + method)(
        request, metadata=client.metadata, timeout=10, **kwargs)


async def _refusal(coroutine):
    with pytest.raises(grpc.RpcError) as error:
        await coroutine
    return details_from_rpc_error(error.value)


async def test_tokens_are_required_and_scoped_to_services(start_server, tmp_path):
    tokens = _tokens(tmp_path, f"# operators\n{ALL}\n\n{PDF_ONLY} pdf\n")
    server = await start_server(hosted=[testkit.SlowService()], auth={"tokens_file": tokens})
    target = f"127.0.0.1:{server.port}"
    async with Client(target, insecure=True, token=ALL) as client:
        assert await _call(client, "Sleep") == b"done"
    async with Client(target) as anonymous:
        refused = await _refusal(_call(anonymous, "Sleep"))
        assert (refused.code, refused.reason) == (grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED")
        assert "authorization: Bearer TOKEN" in refused.message
        # Unknown methods too: a caller without a token learns nothing about what is hosted.
        unknown = await _refusal(anonymous.channel.unary_unary("/sensorium.pdf.v1.PdfService/X")(b""))
        assert unknown.reason == "UNAUTHENTICATED"
        # Health stays open (load balancers and probes carry no token).
        assert await anonymous.health() == "SERVING"
    async with Client(target, insecure=True, token=ALL[:-1] + "0") as wrong:
        assert (await _refusal(_call(wrong, "Sleep"))).reason == "UNAUTHENTICATED"
    async with Client(target, insecure=True, token=PDF_ONLY) as scoped:
        denied = await _refusal(_call(scoped, "Sleep"))
        assert (denied.code, denied.reason) == (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED")
        assert "may call pdf, not slow" in denied.message
    # The shipped client's own methods carry the token: past authentication, this server
    # answers that it hosts no embedding service.
    for token, reason in [(ALL, "NOT_HOSTED"), (None, "UNAUTHENTICATED")]:
        async with Client(target, insecure=True, token=token) as client:
            with pytest.raises(ClientError) as error:
                await EmbeddingClient(client).embedding_space()
            assert error.value.details.reason == reason


async def test_the_tokens_file_is_reloaded_without_a_restart(start_server, tmp_path):
    tokens = _tokens(tmp_path, f"{ALL}\n")
    server = await start_server(hosted=[testkit.SlowService()], auth={"tokens_file": tokens})
    target = f"127.0.0.1:{server.port}"
    aside = tmp_path / "tokens.new"
    aside.write_text(f"{PDF_ONLY}\n")
    aside.chmod(0o600)
    os.replace(aside, tokens)
    async with Client(target, insecure=True, token=PDF_ONLY) as new, \
            Client(target, insecure=True, token=ALL) as revoked:
        assert await _call(new, "Sleep") == b"done"
        assert (await _refusal(_call(revoked, "Sleep"))).reason == "UNAUTHENTICATED"


@pytest.mark.parametrize("protect", [True, False])
async def test_reflection_follows_its_setting(start_server, tmp_path, protect):
    tokens = _tokens(tmp_path, f"{ALL}\n")
    server = await start_server(hosted=[testkit.SlowService()],
                                auth={"tokens_file": tokens, "protect_reflection": protect})

    async def services(metadata=()) -> list[str]:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            request = reflection_pb2.ServerReflectionRequest(list_services="")
            async for response in stub.ServerReflectionInfo(iter([request]), metadata=metadata):
                return [s.name for s in response.list_services_response.service]
        return []

    assert "sensorium.test.Slow" in await services((("authorization", f"Bearer {ALL}"),))
    if protect:
        refused = await _refusal(services())
        assert (refused.code, refused.reason) == (grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED")
    else:
        assert "sensorium.test.Slow" in await services()


async def test_authentication_off_is_logged_once_at_start(start_server, caplog):
    caplog.set_level(logging.INFO)
    server = await start_server(hosted=[testkit.SlowService()])
    async with Client(f"127.0.0.1:{server.port}") as client:
        await _call(client, "Sleep")
        await _call(client, "Sleep")
    assert len([r for r in caplog.records if "authentication is off" in r.getMessage()]) == 1


async def test_calls_per_client_are_limited_per_token(start_server, tmp_path, caplog):
    tokens = _tokens(tmp_path, f"{ALL}\n{PDF_ONLY}\n")
    service = testkit.SlowService()
    server = await start_server(hosted=[service], auth={"tokens_file": tokens},
                                limits={"max_calls_per_client": 2})
    target = f"127.0.0.1:{server.port}"
    caplog.set_level(logging.INFO, logger="sensorium.rpc")
    async with Client(target, insecure=True, token=ALL) as busy, \
            Client(target, insecure=True, token=PDF_ONLY) as other:
        slow = [asyncio.ensure_future(_call(busy, "Sleep", b"1")) for _ in range(2)]
        while service.in_flight < 2:
            await asyncio.sleep(0.01)
        refused = await _refusal(_call(busy, "Sleep"))
        assert (refused.code, refused.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "CLIENT_LIMIT")
        assert refused.retry_after_seconds and refused.retry_after_seconds > 0
        assert "SENSORIUM_LIMITS__MAX_CALLS_PER_CLIENT" in refused.message
        assert await _call(other, "Sleep") == b"done", "another client is not held back"
        assert await asyncio.gather(*slow) == [b"done", b"done"]
        assert await _call(busy, "Sleep") == b"done", "slots come back when calls end"
    lines = [r for r in caplog.records if r.getMessage() == "rpc"]
    assert {r.client for r in lines} == {label_of(ALL), label_of(PDF_ONLY)}
    for record in caplog.records:
        assert ALL not in str(record.__dict__) and PDF_ONLY not in str(record.__dict__)


async def test_client_certificates_name_clients_without_tokens(start_server, tmp_path):
    ca = certs.authority("Sensorium test CA")
    cert, key = certs.issue(ca, "sensorium-server").write(tmp_path, "server")
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(ca.cert_pem)
    service = testkit.SlowService()
    server = await start_server(hosted=[service],
                                tls={"cert_file": cert, "key_file": key, "client_ca_file": ca_file},
                                limits={"max_calls_per_client": 1})
    target = f"127.0.0.1:{server.port}"
    first, second = (certs.issue(ca, name, client=True) for name in ("indexer-1", "indexer-2"))
    async with Client(target, tls_ca=ca_file, tls_cert=first.cert_pem, tls_key=first.key_pem) as one, \
            Client(target, tls_ca=ca_file, tls_cert=second.cert_pem, tls_key=second.key_pem) as two:
        slow = asyncio.ensure_future(_call(one, "Sleep", b"1"))
        while service.in_flight < 1:
            await asyncio.sleep(0.01)
        refused = await _refusal(_call(one, "Sleep"))
        assert refused.reason == "CLIENT_LIMIT" and "cert:CN=indexer-1" in refused.message
        assert await _call(two, "Sleep") == b"done"
        assert await slow == b"done"


async def test_upload_bytes_per_client_are_limited(start_server, tmp_path):
    tokens = _tokens(tmp_path, f"{ALL}\n{PDF_ONLY}\n")
    service = testkit.SlowService()
    server = await start_server(hosted=[service], auth={"tokens_file": tokens})
    # The test service holds its uploads in a budget of its own, as a runtime would.
    budget = service.budget = ByteBudget(1 << 30, per_client_limit=150_000)
    target = f"127.0.0.1:{server.port}"
    payload = b"x" * 100_000
    async with Client(target, insecure=True, token=ALL) as busy, \
            Client(target, insecure=True, token=PDF_ONLY) as other:
        holding = asyncio.ensure_future(_call(busy, "Hold", b"1:" + payload))
        while budget.used < len(payload):
            await asyncio.sleep(0.01)
        refused = await _refusal(_call(busy, "Hold", b"0:" + payload))
        assert (refused.code, refused.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "CLIENT_LIMIT")
        assert refused.retry_after_seconds
        assert await _call(other, "Hold", b"0:" + payload) == b"held 100000"
        assert await holding == b"held 100000"
        assert await _call(busy, "Hold", b"0:" + payload) == b"held 100000"
    assert budget.used == 0 and budget.per_client == {}


async def test_a_token_never_goes_over_plaintext_unless_the_caller_says_so(start_server, tmp_path):
    tokens = _tokens(tmp_path, f"{ALL}\n")
    server = await start_server(hosted=[testkit.SlowService()], auth={"tokens_file": tokens})
    target = f"127.0.0.1:{server.port}"
    with pytest.raises(PlaintextTokenError) as refused:
        Client(target, token=ALL)
    assert refused.value.details.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "insecure" in refused.value.details.message and ALL not in str(refused.value)
    async with Client(target, token=ALL, insecure=True) as client:
        assert await _call(client, "Sleep") == b"done"
    async with Client(target) as anonymous:  # no token, nothing to protect
        assert await anonymous.health() == "SERVING"


HEALTH = "/grpc.health.v1.Health/"


async def test_a_caller_without_a_token_learns_only_the_health_of_names_it_asks(start_server, tmp_path):
    tokens = _tokens(tmp_path, f"{ALL}\n")
    server = await start_server(hosted=[testkit.SlowService()], auth={"tokens_file": tokens})
    request = health_pb2.HealthCheckRequest(service="sensorium.test.Slow").SerializeToString()
    async with Client(f"127.0.0.1:{server.port}") as anonymous:
        assert await anonymous.health("sensorium.test.Slow") == "SERVING"
        listing = anonymous.channel.unary_unary(HEALTH + "List")
        refused = await _refusal(listing(b""))
        assert refused.reason == "UNAUTHENTICATED"
        unknown = await _refusal(anonymous.channel.unary_unary(HEALTH + "Nope")(request))
        assert unknown.reason == "UNAUTHENTICATED" and "slow" not in unknown.message
    async with Client(f"127.0.0.1:{server.port}", token=ALL, insecure=True) as client:
        # grpcio's health servicer does not implement List: a token holder is told so cleanly.
        listed = await _refusal(client.channel.unary_unary(HEALTH + "List")(b"", metadata=client.metadata))
        assert (listed.code, listed.reason) == (grpc.StatusCode.UNIMPLEMENTED, "NOT_HOSTED")
    # The probe port (plaintext, no tokens) answers only checks of a named service.
    async with Client(f"127.0.0.1:{server.health_port}") as probe:
        assert await probe.health("sensorium.test.Slow") == "SERVING"
        refused = await _refusal(probe.channel.unary_unary(HEALTH + "List")(b""))
        assert refused.code == grpc.StatusCode.UNIMPLEMENTED and "slow" not in refused.message.lower()


async def test_an_unknown_method_never_names_the_hosted_services(start_server):
    server = await start_server(hosted=[testkit.SlowService()])
    async with Client(f"127.0.0.1:{server.port}") as anonymous:
        for method in ("/no.such.Service/Call", HEALTH + "Nope"):
            unknown = await _refusal(anonymous.channel.unary_unary(method)(b""))
            assert (unknown.code, unknown.reason) == (grpc.StatusCode.UNIMPLEMENTED, "NOT_HOSTED")
            assert "slow" not in unknown.message and "hosts" not in unknown.message


async def test_reflection_shows_a_token_only_the_services_it_may_call(start_server, tmp_path):
    tokens = _tokens(tmp_path, f"{ALL}\n{PDF_ONLY} pdf\n")
    server = await start_server(hosted=[testkit.SlowService()], auth={"tokens_file": tokens})

    async def ask(token: str, *requests: reflection_pb2.ServerReflectionRequest):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            call = stub.ServerReflectionInfo(iter(requests),
                                             metadata=(("authorization", f"Bearer {token}"),))
            return [response async for response in call]

    listing = reflection_pb2.ServerReflectionRequest(list_services="")
    symbol = reflection_pb2.ServerReflectionRequest(
        file_containing_symbol="sensorium.embedding.v1.EmbeddingService")
    pdf = reflection_pb2.ServerReflectionRequest(file_containing_symbol="sensorium.pdf.v1.PdfService")
    everything = await ask(ALL, listing, symbol, pdf)
    assert "sensorium.test.Slow" in [s.name for s in everything[0].list_services_response.service]
    assert everything[1].HasField("file_descriptor_response")
    scoped = await ask(PDF_ONLY, listing, symbol, pdf)
    names = [s.name for s in scoped[0].list_services_response.service]
    assert "sensorium.test.Slow" not in names and "grpc.health.v1.Health" in names
    assert scoped[1].error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
    assert scoped[2].HasField("file_descriptor_response")
