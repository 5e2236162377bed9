"""The crash quarantine's memory: strikes expire, refusals end, and it stays bounded."""

from __future__ import annotations

import pytest

from sensorium.pdf import runtime
from sensorium.pdf.runtime import Quarantine


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(runtime.time, "monotonic", lambda: now[0])
    return now


def test_two_strikes_within_the_window_refuse_until_the_window_after_the_last(clock):
    quarantine = Quarantine(60)
    doc = (100, "a" * 64)
    quarantine.strike(doc)
    assert quarantine.refused_until(doc) is None  # one crash may be bad luck
    clock[0] += 30
    quarantine.strike(doc)
    assert quarantine.refused_until(doc) == clock[0] + 60
    clock[0] += 61
    assert quarantine.refused_until(doc) is None
    assert not quarantine.active  # expired strikes are forgotten


def test_strikes_further_apart_than_the_window_never_refuse(clock):
    quarantine = Quarantine(60)
    doc = (100, "b" * 64)
    quarantine.strike(doc)
    clock[0] += 61
    quarantine.strike(doc)
    assert quarantine.refused_until(doc) is None


def test_only_documents_of_a_struck_size_are_looked_up_and_memory_is_bounded(clock):
    quarantine = Quarantine(60, capacity=3)
    for size in range(5):
        quarantine.strike((size, "c" * 64))
    assert [quarantine.may_hold(size) for size in range(5)] == [False, False, True, True, True]
