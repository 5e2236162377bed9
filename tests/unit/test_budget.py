"""The byte budget's one way in and out: `hold`, released whatever happens."""

from __future__ import annotations

import pytest

from sensorium.budget import ByteBudget
from sensorium.errors import Reason, SensoriumError


def test_a_hold_is_released_when_its_block_ends_even_on_error():
    budget = ByteBudget(100)
    with budget.hold(60):
        assert budget.used == 60
    assert budget.used == 0
    with pytest.raises(ValueError, match="boom"), budget.hold(30):
        raise ValueError("boom")
    assert budget.used == 0


def test_a_growing_hold_is_refused_past_the_limit_and_still_released():
    budget = ByteBudget(100)
    with budget.hold(40), budget.hold() as stream:
        stream.add(50)
        assert budget.used == 90
        with pytest.raises(SensoriumError) as refused:
            stream.add(20)
        assert budget.used == 90
    assert refused.value.reason is Reason.OVERLOADED and refused.value.retry_after_seconds == 1.0
    assert refused.value.setting == "max_upload_bytes_in_flight"
    assert budget.used == 0


def test_a_hold_that_does_not_fit_takes_nothing():
    budget = ByteBudget(10)
    with pytest.raises(SensoriumError), budget.hold(11):
        pass
    assert budget.used == 0
