"""TLS and mutual TLS on a real in-process server, with certificates the tests make."""

from __future__ import annotations

import asyncio
import logging
import os

import grpc
import pytest

import certs
import testkit
from sensorium.client import Client, ClientError
from sensorium.tls import TlsError

SLEEP = "/sensorium.test.Slow/Sleep"


@pytest.fixture
def ca():
    return certs.authority("Sensorium test CA")


@pytest.fixture
def server_files(tmp_path, ca):
    cert, key = certs.issue(ca, "sensorium-server").write(tmp_path, "server")
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes(ca.cert_pem)
    return cert, key, ca_file


async def _sleep_call(client: Client) -> bytes:
    return await client.channel.unary_unary(SLEEP)(b"0", timeout=10)


async def test_tls_serves_clients_that_trust_the_ca_and_refuses_plaintext(start_server, server_files):
    cert, key, ca_file = server_files
    server = await start_server(hosted=[testkit.SlowService()],
                                tls={"cert_file": cert, "key_file": key})
    async with Client(f"127.0.0.1:{server.port}", tls_ca=ca_file) as client:
        assert await client.health() == "SERVING"
        assert await _sleep_call(client) == b"done"
    async with Client(f"127.0.0.1:{server.port}", timeout=5) as plaintext:
        with pytest.raises(ClientError) as refused:
            await plaintext.health()
    assert refused.value.details.code == grpc.StatusCode.UNAVAILABLE
    # A client that trusts another CA refuses the server.
    other = certs.authority("Another CA")
    async with Client(f"127.0.0.1:{server.port}", tls_ca=other.cert_pem, timeout=5) as wrong:
        with pytest.raises(ClientError) as untrusted:
            await wrong.health()
    assert untrusted.value.details.code == grpc.StatusCode.UNAVAILABLE
    # Kubelet probes send no certificate and speak plaintext: the probe port stays plaintext.
    async with Client(f"127.0.0.1:{server.health_port}") as probe:
        assert await probe.health() == "SERVING"


async def test_mutual_tls_needs_a_client_certificate_from_the_configured_ca(
        start_server, server_files, ca, tmp_path):
    cert, key, ca_file = server_files
    server = await start_server(hosted=[testkit.SlowService()],
                                tls={"cert_file": cert, "key_file": key, "client_ca_file": ca_file})
    target = f"127.0.0.1:{server.port}"
    good = certs.issue(ca, "indexer", client=True)
    async with Client(target, tls_ca=ca_file, tls_cert=good.cert_pem, tls_key=good.key_pem) as client:
        assert await _sleep_call(client) == b"done"

    async def refused(**credentials) -> grpc.StatusCode:
        async with Client(target, tls_ca=ca_file, timeout=5, **credentials) as client:
            with pytest.raises(ClientError) as error:
                await client.health()
        return error.value.details.code

    assert await refused() == grpc.StatusCode.UNAVAILABLE  # no client certificate
    stranger = certs.issue(certs.authority("Another CA"), "indexer", client=True)
    assert await refused(tls_cert=stranger.cert_pem, tls_key=stranger.key_pem) == (
        grpc.StatusCode.UNAVAILABLE)


async def test_rotation_keeps_the_old_pair_until_the_new_key_matches(
        start_server, server_files, tmp_path, caplog):
    cert, key, ca_file = server_files
    server = await start_server(hosted=[testkit.SlowService()],
                                tls={"cert_file": cert, "key_file": key})
    first = await asyncio.to_thread(certs.served_certificate, server.port)

    new_ca = certs.authority("Rotated CA")
    rotated = certs.issue(new_ca, "sensorium-server-2")
    caplog.set_level(logging.INFO, logger="sensorium.tls")
    cert.write_bytes(rotated.cert_pem)  # the certificate first: it no longer matches the key
    for _ in range(3):
        served = await asyncio.to_thread(certs.served_certificate, server.port)
        assert served.serial_number == first.serial_number, "a mismatched pair must not be served"
    async with Client(f"127.0.0.1:{server.port}", tls_ca=ca_file) as old_trust:
        assert await _sleep_call(old_trust) == b"done"
    problems = [r for r in caplog.records if "cannot be served yet" in r.getMessage()]
    assert len(problems) == 1, "one log line per bad state, not one per connection"
    assert "does not belong to the certificate" in problems[0].why

    key.write_bytes(rotated.key_pem)  # now the pair matches
    served = await asyncio.to_thread(certs.served_certificate, server.port)
    assert served.serial_number == rotated.cert.serial_number
    assert served.subject.rfc4514_string() == "CN=sensorium-server-2"
    async with Client(f"127.0.0.1:{server.port}", tls_ca=new_ca.cert_pem) as new_trust:
        assert await _sleep_call(new_trust) == b"done"
    assert any(r.getMessage() == "TLS certificate reloaded" for r in caplog.records)


async def test_a_deleted_file_keeps_the_current_certificate(start_server, server_files):
    cert, key, ca_file = server_files
    server = await start_server(hosted=[testkit.SlowService()],
                                tls={"cert_file": cert, "key_file": key})
    os.unlink(key)
    async with Client(f"127.0.0.1:{server.port}", tls_ca=ca_file) as client:
        assert await _sleep_call(client) == b"done"


@pytest.mark.parametrize("problem", ["mismatch", "missing", "not_pem", "encrypted", "readable"])
async def test_start_up_refuses_files_it_cannot_serve(start_server, server_files, ca, problem):
    cert, key, _ = server_files
    if problem == "mismatch":
        key.write_bytes(certs.issue(ca, "other").key_pem)
        expected = "does not belong to the certificate"
    elif problem == "missing":
        key.unlink()
        expected = "cannot read"
    elif problem == "readable":
        key.chmod(0o644)
        expected = f"chmod 600 {key}"
    elif problem == "not_pem":
        cert.write_text("hello")
        expected = "holds no PEM certificate"
    else:
        from cryptography.hazmat.primitives import serialization

        issued = certs.issue(ca, "sensorium-server")
        cert.write_bytes(issued.cert_pem)
        key.write_bytes(issued.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret")))
        expected = "is an encrypted key"
    with pytest.raises(TlsError) as error:
        await start_server(hosted=[testkit.SlowService()], tls={"cert_file": cert, "key_file": key})
    assert expected in str(error.value)


async def test_plaintext_is_logged_once_at_start(start_server, caplog):
    caplog.set_level(logging.INFO)
    server = await start_server(hosted=[testkit.SlowService()])
    async with Client(f"127.0.0.1:{server.port}") as client:
        for _ in range(3):
            await _sleep_call(client)
    warnings = [r for r in caplog.records
                if r.levelno == logging.WARNING and "TLS is off" in r.getMessage()]
    assert len(warnings) == 1
