"""SIGTERM on a real server process under load: health turns NOT_SERVING at once, calls are
still served for the shutdown delay, then new calls get UNAVAILABLE / SHUTTING_DOWN with a
RetryInfo while in-flight calls finish, and the process exits 0. Every call the server
accepted got an answer."""

from __future__ import annotations

import asyncio
import collections
import re
import signal
import sys
import time

import grpc

import testkit
from sensorium.client import Client, details_from_rpc_error

SLEEP = "/sensorium.test.Slow/Sleep"
DELAY = 1.0  # SENSORIUM_SHUTDOWN_DELAY_SECONDS
LONG_CALL = 3.0  # an in-flight call that outlasts the delay: the drain waits for it


async def test_sigterm_under_load_drains_refuses_with_a_reason_and_exits_zero():
    env = testkit.cli_env(
        PYTHONPATH=str(testkit.REPO / "tests" / "support"),
        SENSORIUM_METRICS_PORT="-1", SENSORIUM_SHUTDOWN_DELAY_SECONDS=str(DELAY),
        SENSORIUM_SHUTDOWN_GRACE_SECONDS="20",
    )
    command = [sys.executable, str(testkit.REPO / "tests" / "support" / "slow_server.py")]
    outcomes: list[tuple[float, float, str, str, float | None]] = []  # start, end, code, reason, retry
    with testkit.serve(env, command=command) as server:
        async with Client(server.target) as client, \
                Client(f"127.0.0.1:{server.health_port}") as probe:
            sleep = client.channel.unary_unary(SLEEP)
            stop = asyncio.Event()

            async def load() -> None:
                while not stop.is_set():
                    started = time.monotonic()
                    try:
                        await sleep(b"0.2", timeout=15)
                        outcomes.append((started, time.monotonic(), "OK", "", None))
                    except grpc.RpcError as error:
                        d = details_from_rpc_error(error)
                        outcomes.append((started, time.monotonic(), d.code.name, d.reason,
                                         d.retry_after_seconds))
                        if not d.reason:  # not answered by the server: it has stopped listening
                            return
                        await asyncio.sleep(0.05)

            workers = [asyncio.ensure_future(load()) for _ in range(6)]
            await asyncio.sleep(0.5)
            long_call = asyncio.ensure_future(sleep(str(LONG_CALL).encode(), timeout=30))
            await asyncio.sleep(0.3)
            server.process.send_signal(signal.SIGTERM)
            sigterm = time.monotonic()
            await asyncio.sleep(0.2)
            assert await probe.health() == "NOT_SERVING"  # at once, for the load balancers
            assert await long_call == b"done"  # in flight through the delay and the drain
            await asyncio.wait_for(asyncio.gather(*workers), 30)
            stop.set()
        code = server.process.wait(30)
        assert code == 0
        log = server.log + server.process.stderr.read()

    served_during_delay = [o for o in outcomes if sigterm < o[0] and o[1] < sigterm + DELAY - 0.1]
    assert served_during_delay and all(o[2] == "OK" for o in served_during_delay)
    refusals = [o for o in outcomes if o[3] == "SHUTTING_DOWN"]
    assert refusals, "new calls during the drain get SHUTTING_DOWN"
    assert all(o[2] == "UNAVAILABLE" and o[4] and o[4] > 0 for o in refusals), "with RetryInfo"
    assert min(o[0] for o in refusals) > sigterm + DELAY - 0.1, "not before the delay is over"
    # The listener stayed open while the long call drained: refusals came for seconds.
    assert max(o[1] for o in refusals) - min(o[0] for o in refusals) > 1.0
    unanswered = [o for o in outcomes if o[2] != "OK" and o[3] != "SHUTTING_DOWN"]
    assert all(o[2] == "UNAVAILABLE" and o[0] > sigterm + LONG_CALL - 0.5 for o in unanswered), (
        f"only calls made after the server stopped listening may go unanswered: {unanswered}")
    # Every call the server accepted got an answer: what it logged is what the clients got.
    logged = collections.Counter(re.findall(r" rpc method=\S+Sleep code=(\w+)", log))
    answered = collections.Counter(o[2] for o in outcomes if o[2] == "OK" or o[3])
    answered["OK"] += 1  # the long call
    assert logged == answered
    assert "Traceback" not in log and "draining" in log and "stopped" in log
