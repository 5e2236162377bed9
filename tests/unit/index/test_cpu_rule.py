"""The in-process job's CPU rule: on the CPU the embedding model gets every CPU of the process
unless SENSORIUM_EMBEDDING__CPU_THREADS says otherwise; PDF, documents, transcription and media
keep the split's shares; on a GPU nothing changes. The machine is faked with a device gate (no
torch import)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from sensorium.device import DeviceError, DeviceGate, DevicePlan
from sensorium.index.job import local_runtimes
from sensorium.pdf.runtime import PdfRuntime
from sensorium.runtimes import Runtimes
from sensorium.settings import Settings

RULE = "sensorium.index"


def _gate(device: str) -> DeviceGate:
    """A gate whose machine has a usable GPU ("cuda"), none ("cpu"), or a broken one ("broken",
    under device=cuda: the DeviceError starting the model reports)."""

    def resolve(requested: Any, *, libraries: Any, cpus: int) -> DevicePlan:
        if device == "broken":
            raise DeviceError("device=cuda was requested, but CUDA is not usable")
        if device == "cuda":
            return DevicePlan("cuda", "fake GPU", "float16", "float16", cpus)
        return DevicePlan("cpu", "no GPU", "float32", "int8", cpus)

    return DeviceGate("auto", ["torch", "ctranslate2"], resolve=resolve)


def _runtimes(settings: Settings, device: str) -> Runtimes:
    return asyncio.run(local_runtimes(settings, device=_gate(device)))


def _rule_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == RULE and "embedding model" in r.getMessage()]


@pytest.mark.parametrize(("cpus", "split"), [
    (2, {"pdf": 1, "transcription": 1, "embedding": 2, "document": 1, "media": 1}),
    (8, {"pdf": 2, "transcription": 2, "embedding": 8, "document": 1, "media": 1}),
])
def test_on_the_cpu_the_embedding_model_gets_every_cpu_and_the_others_keep_their_share(
    cpus: int, split: dict[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=RULE):
        runtimes = _runtimes(Settings(cpus=cpus), "cpu")
    assert runtimes.cpu.shares == split
    assert runtimes.of(PdfRuntime).workers == split["pdf"]
    (line,) = _rule_lines(caplog)
    assert f"gets all {cpus} CPUs" in line and "SENSORIUM_EMBEDDING__CPU_THREADS" in line


def test_device_cpu_needs_no_probe_and_gets_the_same_rule() -> None:
    # The real gate: device=cpu decides without importing torch.
    runtimes = asyncio.run(local_runtimes(Settings(cpus=4, device="cpu")))
    assert runtimes.cpu.shares == {"pdf": 1, "transcription": 1, "embedding": 4, "document": 1, "media": 1}


def test_a_set_cpu_threads_is_kept(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=RULE):
        runtimes = _runtimes(Settings(cpus=8, embedding={"cpu_threads": 2}), "cpu")
    assert runtimes.cpu.shares == {"pdf": 2, "transcription": 2, "embedding": 2, "document": 1, "media": 1}
    assert _rule_lines(caplog) == []


@pytest.mark.parametrize("device", ["cuda", "broken"])
def test_on_a_gpu_or_a_broken_one_the_split_is_unchanged(
    device: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=RULE):
        runtimes = _runtimes(Settings(cpus=8), device)
    assert runtimes.cpu.shares == {"pdf": 2, "transcription": 2, "embedding": 2, "document": 1, "media": 1}
    assert _rule_lines(caplog) == []
