"""Option validation, and batched mode's consequences made explicit."""

from __future__ import annotations

import pytest

from sensorium.errors import Reason, SensoriumError
from sensorium.transcription.transcriber import (
    DEFAULT_TEMPERATURES,
    RequestedOptions,
    check_audio,
    resolve_options,
)

LANGUAGES = ["en", "de", "fr"]


def resolve(multilingual: bool = True, **requested):
    return resolve_options(RequestedOptions(**requested), multilingual=multilingual,
                           languages=LANGUAGES if multilingual else ["en"], default_batch_size=8)


def refused(**requested) -> str:
    multilingual = requested.pop("multilingual", True)
    with pytest.raises(SensoriumError) as error:
        resolve(multilingual, **requested)
    assert error.value.reason is Reason.INVALID_REQUEST
    return error.value.message


def test_defaults_are_faster_whispers():
    options = resolve()
    assert options.language is None and options.task == "transcribe"
    assert options.beam_size == 5 and options.temperatures == DEFAULT_TEMPERATURES
    assert options.condition_on_previous_text and not options.vad_filter and not options.batched


def test_batched_mode_turns_vad_on_conditioning_off_and_one_temperature():
    options = resolve(batched=True)
    assert options.batched and options.vad_filter and not options.condition_on_previous_text
    assert options.temperatures == (0.0,) and options.batch_size == 8
    assert resolve(batched=True, vad_filter=False, batch_size=4).batch_size == 4


def test_contradictions_of_batched_mode_are_refused_not_overridden():
    assert "never conditions" in refused(batched=True, condition_on_previous_text=True)
    assert "one temperature" in refused(batched=True, temperatures=(0.0, 0.5))
    assert "only to batched mode" in refused(batch_size=4)


def test_batched_without_vad_needs_short_audio():
    options = resolve(batched=True, vad_filter=False)
    check_audio(options, 29.0)
    with pytest.raises(SensoriumError, match="turn vad_filter on"):
        check_audio(options, 31.0)


def test_languages_tasks_beams_temperatures():
    assert resolve(language=" DE ").language == "de"
    assert "unknown language" in refused(language="xx")
    assert "English-only" in refused(multilingual=False, language="de")
    assert "cannot translate" in refused(multilingual=False, task="translate")
    assert resolve(multilingual=False, language="en").language == "en"
    assert "beam_size" in refused(beam_size=99)
    assert "temperatures" in refused(temperatures=(-1.0,))
    assert "temperatures" in refused(temperatures=(float("nan"),))
    assert resolve(temperatures=(0.0,)).temperatures == (0.0,)
    assert resolve(initial_prompt="", hotwords="").initial_prompt is None
