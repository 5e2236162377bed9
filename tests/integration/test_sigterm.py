"""SIGTERM on a real server process: in-flight work drains, new work is refused, exit 0."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import grpc

import testkit
from sensorium.client import Client


async def test_sigterm_drains_an_in_flight_call_and_exits_zero():
    env = {**os.environ, "PYTHONPATH": str(testkit.REPO / "tests" / "support"),
           "SENSORIUM_ADDRESS": "127.0.0.1:0", "SENSORIUM_HEALTH_PORT": "0",
           "SENSORIUM_METRICS_PORT": "-1", "SENSORIUM_SHUTDOWN_DELAY_SECONDS": "0.5",
           "SENSORIUM_SHUTDOWN_GRACE_SECONDS": "10"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(testkit.REPO / "tests" / "support" / "slow_server.py"),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        _, port, health_port = line.split()
        async with Client(f"127.0.0.1:{port}") as client, \
                Client(f"127.0.0.1:{health_port}") as probe:
            slow = asyncio.ensure_future(client.channel.unary_unary("/sensorium.test.Slow/Sleep")(b"2"))
            await asyncio.sleep(0.5)
            process.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.2)
            assert await probe.health() == "NOT_SERVING"
            await asyncio.sleep(0.6)  # past the shutdown delay
            try:
                await client.channel.unary_unary("/sensorium.test.Slow/Sleep")(b"0")
                refused = None
            except grpc.RpcError as error:
                refused = error.code()
            assert refused == grpc.StatusCode.UNAVAILABLE
            assert await slow == b"done"
        code = await asyncio.wait_for(process.wait(), 20)
        stderr = (await process.stderr.read()).decode()
        assert code == 0, stderr
        assert "shutting down" in stderr and "stopped" in stderr
        assert "Traceback" not in stderr
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
