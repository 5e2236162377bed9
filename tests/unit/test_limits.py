"""Per-client limits: calls in flight, and upload bytes held through the server's byte budget."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars

import pytest

from sensorium.budget import ByteBudget
from sensorium.errors import Reason, SensoriumError
from sensorium.limits import CURRENT_CLIENT, CallLimiter


def test_call_limiter_counts_per_client():
    limiter = CallLimiter(2)
    limiter.acquire("a")
    limiter.acquire("a")
    limiter.acquire("b")
    with pytest.raises(SensoriumError) as error:
        limiter.acquire("a")
    assert error.value.reason == Reason.CLIENT_LIMIT and error.value.retry_after_seconds
    limiter.release("a")
    limiter.acquire("a")
    for client in ("a", "a", "b"):
        limiter.release(client)
    assert limiter.in_flight == {}
    unlimited = CallLimiter(0)
    for _ in range(1000):
        unlimited.acquire("a")


def _in_call_of(client: str):
    """A context whose current client is `client`, as the interceptor makes for each call."""
    context = contextvars.copy_context()
    context.run(CURRENT_CLIENT.set, client)
    return context


def _hold(holds: contextlib.ExitStack, client: str, budget: ByteBudget, n: int):
    """`budget.hold(n)` entered in a call of `client`, released when `holds` closes."""
    manager = budget.hold(n)
    held = _in_call_of(client).run(manager.__enter__)
    holds.callback(manager.__exit__, None, None, None)
    return held


def test_byte_budget_counts_each_client_within_the_server_limit():
    budget = ByteBudget(limit=1000, per_client_limit=400)
    with contextlib.ExitStack() as holds:
        held_a = _hold(holds, "a", budget, 300)
        _hold(holds, "b", budget, 400)
        with pytest.raises(SensoriumError) as error:
            _hold(holds, "a", budget, 200)
        assert error.value.reason == Reason.CLIENT_LIMIT
        assert error.value.setting == "limits.max_upload_bytes_per_client"
        assert error.value.retry_after_seconds
        assert budget.used == 700, "a refused hold holds nothing"
        with pytest.raises(SensoriumError) as grown:
            held_a.add(101)  # a stream's hold grows chunk by chunk, within its client's share
        assert grown.value.reason == Reason.CLIENT_LIMIT
        _hold(holds, "c", budget, 300)
        with pytest.raises(SensoriumError) as full:
            _hold(holds, "d", budget, 1)
        assert full.value.reason == Reason.OVERLOADED, "the server-wide limit still applies"
        assert budget.per_client == {"a": 300, "b": 400, "c": 300}
    assert budget.used == 0 and budget.per_client == {}


def test_a_hold_gives_back_to_the_client_it_took_from():
    budget = ByteBudget(limit=1000, per_client_limit=400)
    with contextlib.ExitStack() as holds:
        _hold(holds, "a", budget, 100).add(100)
        assert budget.per_client == {"a": 200}
        # The hold ends in whatever context: its bytes still go back to client a.
    assert budget.per_client == {} and budget.used == 0


def test_byte_budget_without_a_per_client_limit_or_client():
    budget = ByteBudget(limit=100)
    with contextlib.ExitStack() as holds:
        _hold(holds, "a", budget, 100)
        assert budget.per_client == {}
    limited = ByteBudget(limit=100, per_client_limit=10)
    with limited.hold(50):  # no current client (in-process use): only the server-wide limit
        assert limited.used == 50
    assert limited.used == 0


async def test_the_current_client_follows_each_call_task():
    budget = ByteBudget(limit=1000, per_client_limit=100)

    async def call(client: str) -> None:
        CURRENT_CLIENT.set(client)
        with budget.hold(100):
            await asyncio.sleep(0.01)
            await asyncio.to_thread(lambda: None)
            assert budget.per_client[client] == 100

    await asyncio.gather(*(asyncio.create_task(call(c)) for c in ("a", "b", "c")))
    assert budget.per_client == {} and budget.used == 0
