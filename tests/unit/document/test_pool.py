"""Documents parsed in worker processes: the same result as in-process, and a crash, a hang or
a memory hog fails only its own task."""

from __future__ import annotations

import asyncio

import pytest

import doc_faults
from sensorium.document import engine
from sensorium.document.api import DocumentKind
from sensorium.document.guards import Limits
from sensorium.document.pool import document_pool
from sensorium.errors import Reason, SensoriumError
from sensorium.workers import PoolLimits


@pytest.fixture
async def pool():
    restarts: list[str] = []
    made = document_pool(PoolLimits(timeout_seconds=5, memory_mb=1024, recycle_after=100, max_pending=4),
                         workers=1, on_worker_restart=restarts.append)
    made.restarts = restarts
    await made.warm_up()
    yield made
    await made.close()


async def test_a_worker_returns_what_the_engine_returns_in_process(pool, generated):
    path = generated[0] / "report.docx"
    in_worker = await pool.run(engine.parse, str(path), DocumentKind.DOCX, Limits())
    assert in_worker == engine.parse(path, DocumentKind.DOCX)


async def test_a_crash_fails_only_its_task(pool, generated):
    with pytest.raises(SensoriumError) as raised:
        await pool.run(doc_faults.crash)
    assert raised.value.reason is Reason.PARSER_CRASH and "document parser crashed" in raised.value.message
    document = await pool.run(engine.parse, str(generated[0] / "notes.txt"), DocumentKind.TEXT, Limits())
    assert "anchor chain grease" in document.text
    assert pool.restarts == ["crash"]


async def test_a_hang_is_killed_at_the_time_limit(pool):
    with pytest.raises(SensoriumError) as raised:
        await asyncio.wait_for(pool.run(doc_faults.hang), 30)
    assert raised.value.reason is Reason.PROCESSING_LIMIT
    assert raised.value.setting == "document.timeout_seconds"


async def test_memory_past_the_cap_is_a_processing_limit(pool):
    with pytest.raises(SensoriumError) as raised:
        await pool.run(doc_faults.allocate, 2048)
    assert raised.value.reason is Reason.PROCESSING_LIMIT
    assert raised.value.setting == "document.worker_memory_mb"
    assert await pool.run(doc_faults.allocate, 10) == 10 * 1024 * 1024


async def test_errors_of_the_document_cross_the_process_boundary(pool, hostile):
    with pytest.raises(SensoriumError) as raised:
        await pool.run(engine.parse, str(hostile[0] / "locked.docx"), DocumentKind.DOCX, Limits())
    assert raised.value.reason is Reason.DOCUMENT_ENCRYPTED
