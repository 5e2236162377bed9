"""The runtime layer's process-wide decisions: the CPU split, the registry, the device gate,
and what the runtime modules import."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

import testkit
from sensorium import cli
from sensorium.device import DeviceError, DeviceGate, DevicePlan, split_cpus
from sensorium.errors import Reason, SensoriumError, ServiceStartError
from sensorium.exits import Exit
from sensorium.pdf.runtime import PdfRuntime
from sensorium.registry import SERVICES, Load
from sensorium.runtimes import Runtimes, fixed_cpu_shares
from sensorium.settings import ALL_SERVICES


def test_cpus_are_split_equally_with_the_remainder_to_the_first_services():
    assert split_cpus(16, ["pdf", "transcription", "embedding"]).shares == {
        "pdf": 6, "transcription": 5, "embedding": 5}
    assert split_cpus(2, ["pdf"]).shares == {"pdf": 2}
    assert split_cpus(4, ["pdf", "embedding"]).shares == {"pdf": 2, "embedding": 2}


def test_every_service_gets_at_least_one_cpu_and_the_log_says_when_that_is_too_many():
    budget = split_cpus(2, ["pdf", "transcription", "embedding"])
    assert budget.shares == {"pdf": 1, "transcription": 1, "embedding": 1}
    assert "3 in all, more than the CPUs" in budget.describe()


def test_a_service_sized_by_its_own_setting_takes_that_many_and_the_rest_share_what_is_left():
    budget = split_cpus(8, ["pdf", "transcription", "embedding"], {"pdf": 4})
    assert budget.shares == {"pdf": 4, "transcription": 2, "embedding": 2}
    assert budget.describe() == "8 CPUs: pdf 4 (set), transcription 2, embedding 2"


def test_the_settings_that_size_a_service_are_the_documented_ones():
    settings = testkit.test_settings(
        pdf={"workers": 3}, transcription={"cpu_threads": 2, "workers": 2},
        embedding={"cpu_threads": 2, "preprocess_threads": 1},
    )
    assert fixed_cpu_shares(settings) == {"pdf": 3, "transcription": 4, "embedding": 3}
    assert fixed_cpu_shares(testkit.test_settings()) == {}


def test_runtimes_split_the_process_cpus_once_and_log_it(caplog: pytest.LogCaptureFixture):
    settings = testkit.test_settings(cpus=4, services=["pdf", "transcription", "embedding"])
    with caplog.at_level(logging.INFO, logger="sensorium.runtimes"):
        runtimes = Runtimes(settings)
    assert runtimes.cpu.shares == {"pdf": 2, "transcription": 1, "embedding": 1}
    assert runtimes.of(PdfRuntime).workers == 2
    (record,) = [r for r in caplog.records if r.getMessage() == "cpu budget"]
    assert record.split == "4 CPUs: pdf 2, transcription 1, embedding 1"  # type: ignore[attr-defined]


def test_a_runtime_that_is_not_hosted_is_refused_by_name():
    runtimes = Runtimes(testkit.test_settings(cpus=1), ["pdf"])
    with pytest.raises(SensoriumError) as error:
        runtimes.get("embedding")
    assert error.value.reason is Reason.NOT_HOSTED and "running: pdf" in error.value.message


def test_the_registry_names_every_service_the_settings_know():
    assert tuple(SERVICES) == ALL_SERVICES
    for name, spec in SERVICES.items():
        assert spec.name == name and spec.grpc_name.startswith(f"sensorium.{name}.v1.")
    assert SERVICES["pdf"].prepare_models is None
    assert SERVICES["embedding"].libraries == ("torch",)


def test_every_module_the_registry_names_is_there():
    """The table names its services' code as strings (so that it imports none of it): each
    must resolve to something callable, or a typo would surface only when that service starts."""
    for spec in SERVICES.values():
        for factory in (spec.create_runtime, spec.add_servicer, spec.remote, spec.prepare_models):
            if isinstance(factory, Load):
                assert callable(factory.resolve()), factory.target
    with pytest.raises(ValueError, match=r"package\.module:name"):
        Load("sensorium.pdf.runtime").resolve()


def test_the_cli_lists_services_from_the_registry(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit):
        cli.main(["models", "--help"])
    assert "pdf, transcription, embedding" in capsys.readouterr().out
    assert cli.main(["models", "ocr"]) == Exit.USAGE
    assert "known: pdf, transcription, embedding" in capsys.readouterr().err


async def test_the_device_is_decided_once_per_process_and_each_service_gets_its_cpu_share():
    calls = []

    def resolve(requested, *, libraries, cpus):
        calls.append((requested, libraries))
        return DevicePlan("cpu", "test", "float32", "int8", cpus)

    gate = DeviceGate("auto", ["torch", "ctranslate2", "torch"], resolve=resolve)
    first, second = await gate.plan(3), await gate.plan(1)
    assert calls == [("auto", ("torch", "ctranslate2"))]
    assert (first.cpu_threads, second.cpu_threads) == (3, 1)


async def test_a_required_gpu_that_is_missing_fails_every_model_service_with_the_fix():
    def resolve(requested, *, libraries, cpus):
        raise DeviceError("device=cuda was requested, but CUDA is not usable: no GPU")

    settings = testkit.test_settings(cpus=2, device="cuda", services=["embedding"])
    runtimes = Runtimes(settings, device=DeviceGate("cuda", ["torch"], resolve=resolve))
    with pytest.raises(ServiceStartError, match="CUDA is not usable"):
        await runtimes.start_all()


def _imported_after(code: str) -> set[str]:
    script = f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                          timeout=120)
    return set(done.stdout.split())


def test_runtime_modules_import_neither_grpc_nor_generated_protobuf_nor_torch():
    modules = _imported_after(
        "import sensorium.runtimes, sensorium.registry, sensorium.pdf.runtime, "
        "sensorium.transcription.runtime, sensorium.embedding.runtime"
    )
    transport = {m for m in modules if m.split(".")[0] == "grpc" or m.endswith(("_pb2", "_pb2_grpc"))}
    assert not transport
    assert "torch" not in modules


def test_a_pdf_only_process_extracts_without_importing_torch_or_the_model_libraries(tmp_path):
    pdf = tmp_path / "doc.pdf"
    pdf.write_bytes(testkit.make_pdf(["hello runtime"]))
    modules = _imported_after(f"""
import asyncio
from sensorium.pdf.extractor import ExtractOptions, PageResult
from sensorium.runtimes import Runtimes
from sensorium.settings import Settings
from sensorium.pdf.runtime import PdfRuntime

async def main():
    async with Runtimes(Settings(services=["pdf"], cpus=1)) as runtimes:
        texts = [item.text async for batch in runtimes.of(PdfRuntime).extract({str(pdf)!r}, ExtractOptions())
                 if isinstance(batch, list) for item in batch if isinstance(item, PageResult)]
    assert texts == ["hello runtime"], texts

asyncio.run(main())
""")
    assert not {"torch", "ctranslate2", "faster_whisper", "open_clip"} & modules
