"""Per-client limits: calls in flight, and upload bytes held through the server's byte budget."""

from __future__ import annotations

import asyncio
import contextvars

import pytest

from sensorium.errors import Reason, SensoriumError
from sensorium.limits import CURRENT_CLIENT, CallLimiter
from sensorium.uploads import ByteBudget


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


def _as(client: str, action, *args):
    """Run `action` in a context whose current client is `client`, as a call's task is."""
    context = contextvars.copy_context()
    context.run(CURRENT_CLIENT.set, client)
    return context.run(action, *args)


def test_byte_budget_counts_each_client_within_the_server_limit():
    budget = ByteBudget(limit=1000, per_client_limit=400)
    _as("a", budget.take, 300)
    _as("b", budget.take, 400)
    with pytest.raises(SensoriumError) as error:
        _as("a", budget.take, 200)
    assert error.value.reason == Reason.CLIENT_LIMIT
    assert "SENSORIUM_LIMITS__MAX_UPLOAD_BYTES_PER_CLIENT" in error.value.message
    assert error.value.retry_after_seconds
    assert budget.used == 700, "a refused take holds nothing"
    _as("c", budget.take, 300)
    with pytest.raises(SensoriumError) as full:
        _as("d", budget.take, 1)
    assert full.value.reason == Reason.OVERLOADED, "the server-wide limit still applies"
    _as("a", budget.give, 300)
    _as("a", budget.take, 300)  # what a gave back is free for it again
    for client, n in (("a", 300), ("b", 400), ("c", 300)):
        _as(client, budget.give, n)
    assert budget.used == 0 and budget.per_client == {}


def test_byte_budget_without_a_per_client_limit_or_client():
    budget = ByteBudget(limit=100)
    _as("a", budget.take, 100)
    _as("a", budget.give, 100)
    limited = ByteBudget(limit=100, per_client_limit=10)
    limited.take(50)  # no current client (in-process use): only the server-wide limit
    limited.give(50)
    assert limited.used == 0


async def test_the_current_client_follows_each_call_task():
    budget = ByteBudget(limit=1000, per_client_limit=100)

    async def call(client: str) -> None:
        CURRENT_CLIENT.set(client)
        budget.take(100)
        await asyncio.sleep(0.01)
        await asyncio.to_thread(lambda: None)
        budget.give(100)

    await asyncio.gather(*(asyncio.create_task(call(c)) for c in ("a", "b", "c")))
    assert budget.per_client == {} and budget.used == 0
