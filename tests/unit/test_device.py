"""Device policy against a faked machine: probes, cgroup files and modules are all fakes here."""

from __future__ import annotations

import logging
import os
import sys
import types
from pathlib import Path

import pytest

from sensorium.device import (
    DeviceError,
    DevicePlan,
    available_cpus,
    is_cuda_library_error,
    is_cuda_oom,
    probe_ctranslate2,
    probe_torch,
    resolve_device,
    thread_counts,
)


def sees(count: int | None):
    return lambda: count


def broken(message: str):
    def probe() -> int:
        raise RuntimeError(message)

    return probe


def never():
    raise AssertionError("this probe must not run")


# ---- resolve_device ---------------------------------------------------------------------------


def test_cpu_requested_probes_nothing():
    plan = resolve_device("cpu", probes={"torch": never, "ctranslate2": never}, cpus=4)
    assert plan == DevicePlan("cpu", "device=cpu was requested", "float32", "int8", 4)


@pytest.mark.parametrize("requested", ["auto", "cuda"])
def test_usable_cuda_runs_on_cuda_in_half_precision(requested, caplog):
    caplog.set_level(logging.INFO, "sensorium.device")
    plan = resolve_device(requested, probes={"torch": sees(1), "ctranslate2": sees(2)}, cpus=8)
    assert plan.is_cuda
    assert (plan.torch_dtype, plan.compute_type, plan.cpu_threads) == ("float16", "float16", 8)
    assert "torch sees 1 CUDA device" in plan.reason
    assert "ctranslate2 sees 2 CUDA devices" in plan.reason
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_auto_without_a_gpu_runs_on_cpu_with_a_warning(caplog):
    plan = resolve_device("auto", probes={"torch": sees(0), "ctranslate2": sees(0)}, cpus=2)
    assert (plan.device, plan.torch_dtype, plan.compute_type) == ("cpu", "float32", "int8")
    assert "no CUDA device visible" in plan.reason
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "models run on the CPU" in warnings[0]


def test_auto_falls_back_to_cpu_on_a_library_failure_and_says_which(caplog):
    probes = {
        "torch": sees(1),
        "ctranslate2": broken("cannot load libcublas.so.12 (libcublas.so.12: cannot open)"),
    }
    plan = resolve_device("auto", probes=probes, cpus=2)
    assert plan.device == "cpu"
    assert "ctranslate2: CUDA failed to initialise: cannot load libcublas.so.12" in plan.reason
    assert "libcublas.so.12" in caplog.text


def test_auto_falls_back_when_torch_cuda_raises():
    probes = {"torch": broken("CUDA driver initialization failed"), "ctranslate2": sees(None)}
    plan = resolve_device("auto", probes=probes, cpus=2)
    assert plan.device == "cpu"
    assert "torch: CUDA failed to initialise: CUDA driver initialization failed" in plan.reason


@pytest.mark.parametrize(
    ("probes", "why"),
    [
        ({"torch": sees(0), "ctranslate2": sees(0)}, "no CUDA device visible"),
        ({"torch": sees(1), "ctranslate2": broken("cannot load libcudnn_ops.so.9")}, "libcudnn"),
    ],
)
def test_cuda_requested_fails_fast_with_the_reason(probes, why):
    with pytest.raises(DeviceError) as error:
        resolve_device("cuda", probes=probes, cpus=2)
    message = str(error.value)
    assert why in message
    assert "SENSORIUM_DEVICE=auto" in message


def test_only_the_hosted_services_libraries_are_probed():
    probes = {"torch": sees(1), "ctranslate2": never}
    plan = resolve_device("cuda", libraries=["torch"], probes=probes, cpus=2)
    assert plan.is_cuda


def test_a_library_that_is_not_installed_has_no_say():
    plan = resolve_device("cuda", probes={"torch": sees(None), "ctranslate2": sees(1)}, cpus=2)
    assert plan.is_cuda


def test_no_model_library_installed():
    probes = {"torch": sees(None), "ctranslate2": sees(None)}
    assert resolve_device("auto", probes=probes, cpus=2).device == "cpu"
    with pytest.raises(DeviceError, match="none of the hosted services' model libraries"):
        resolve_device("cuda", probes=probes, cpus=2)


def test_an_unknown_request_is_refused():
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu", probes={}, cpus=1)  # type: ignore[arg-type]


def test_a_plan_moved_to_cpu_changes_precision_too():
    cuda = resolve_device("cuda", probes={"torch": sees(1), "ctranslate2": sees(1)}, cpus=4)
    cpu = cuda.on_cpu("warm-up: libcudnn_ops.so.9 missing")
    assert (cpu.device, cpu.torch_dtype, cpu.compute_type) == ("cpu", "float32", "int8")
    assert cpu.cpu_threads == 4
    assert cpu.reason == "warm-up: libcudnn_ops.so.9 missing"


# ---- the real probes, on fake modules ---------------------------------------------------------


class FakeTorchCuda:
    def __init__(self, available: bool, count: int, init_error: str | None = None) -> None:
        self._available, self._count, self._init_error = available, count, init_error

    def is_available(self) -> bool:
        return self._available

    def device_count(self) -> int:
        return self._count


def fake_torch(monkeypatch, available: bool, count: int = 0, init_error: str | None = None):
    torch = types.ModuleType("torch")
    torch.cuda = FakeTorchCuda(available, count)  # type: ignore[attr-defined]

    def zeros(*shape: int, device: str) -> object:
        if init_error:
            raise RuntimeError(init_error)
        return object()

    torch.zeros = zeros  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch", torch)


def test_probe_torch_when_torch_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    assert probe_torch() is None


def test_probe_torch(monkeypatch):
    fake_torch(monkeypatch, available=False)
    assert probe_torch() == 0
    fake_torch(monkeypatch, available=True, count=2)
    assert probe_torch() == 2
    fake_torch(monkeypatch, available=True, count=1, init_error="CUDA driver version is insufficient")
    with pytest.raises(RuntimeError, match="driver version"):
        probe_torch()


def fake_ctranslate2(monkeypatch, count: int):
    ct2 = types.ModuleType("ctranslate2")
    ct2.get_cuda_device_count = lambda: count  # type: ignore[attr-defined]
    ct2.get_supported_compute_types = lambda device: {"float32", "float16"}  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ctranslate2", ct2)


def test_probe_ctranslate2_when_it_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "ctranslate2", None)
    assert probe_ctranslate2() is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the library check is Linux-only")
def test_probe_ctranslate2_loads_cublas_and_cudnn(monkeypatch):
    loaded: list[str] = []

    def load(name: str) -> object:
        loaded.append(name)
        if name.startswith("libcudnn"):
            raise OSError(f"{name}: cannot open shared object file: No such file or directory")
        return object()

    fake_ctranslate2(monkeypatch, count=0)
    assert probe_ctranslate2(load_library=load) == 0
    assert loaded == []  # no GPU: nothing to load

    fake_ctranslate2(monkeypatch, count=1)
    with pytest.raises(RuntimeError, match=r"cannot load libcudnn_ops\.so\.9"):
        probe_ctranslate2(load_library=load)
    assert loaded == ["libcublas.so.12", "libcudnn_ops.so.9"]
    assert probe_ctranslate2(load_library=lambda name: object()) == 1


# ---- errors -----------------------------------------------------------------------------------


def test_cuda_oom_is_recognised_without_importing_torch(monkeypatch):
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    assert is_cuda_oom(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_cuda_oom(RuntimeError("CUDA failed with error out of memory"))  # CTranslate2
    assert is_cuda_oom(RuntimeError("cuBLAS failed with status CUBLAS_STATUS_ALLOC_FAILED"))
    assert not is_cuda_oom(MemoryError("host memory"))
    assert not is_cuda_oom(ValueError("bad input"))
    assert "torch" not in sys.modules


def test_cuda_oom_by_type_and_through_causes(monkeypatch):
    class OutOfMemoryError(RuntimeError):
        pass

    torch = types.ModuleType("torch")
    torch.cuda = types.SimpleNamespace(OutOfMemoryError=OutOfMemoryError)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch", torch)
    assert is_cuda_oom(OutOfMemoryError("allocation failed"))

    outer = RuntimeError("embedding failed")
    outer.__cause__ = OutOfMemoryError("allocation failed")
    assert is_cuda_oom(outer)


def test_library_errors_are_not_oom():
    assert is_cuda_library_error(RuntimeError("Library libcublas.so.12 is not found or cannot be loaded"))
    assert is_cuda_library_error(
        RuntimeError("Unable to load any of {libcudnn_ops.so.9.1.0, libcudnn_ops.so.9}")
    )
    assert is_cuda_library_error(RuntimeError("CUDA driver version is insufficient for CUDA runtime"))
    assert not is_cuda_library_error(RuntimeError("CUDA out of memory"))
    assert not is_cuda_library_error(ValueError("bad input"))


# ---- CPUs -------------------------------------------------------------------------------------


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def cpus_of(tmp_path: Path, affinity: int = 64, proc: str = "0::/\n") -> int:
    write(tmp_path / "proc-self-cgroup", proc)
    return available_cpus(tmp_path / "cg", tmp_path / "proc-self-cgroup", lambda: affinity)


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [
        ("max 100000\n", 64),  # no limit: the affinity counts
        ("200000 100000\n", 2),
        ("150000 100000\n", 1),  # 1.5 CPUs: round down, threads beyond the quota are throttled
        ("50000 100000\n", 1),  # half a CPU: still one thread
        ("garbage\n", 64),
    ],
)
def test_cgroup_v2_cpu_max(tmp_path, cpu_max, expected):
    write(tmp_path / "cg" / "cpu.max", cpu_max)
    assert cpus_of(tmp_path) == expected


def test_affinity_below_the_quota_wins(tmp_path):
    write(tmp_path / "cg" / "cpu.max", "800000 100000\n")
    assert cpus_of(tmp_path, affinity=3) == 3


def test_cgroup_v2_parent_quota_caps_the_process_cgroup(tmp_path):
    # Without a cgroup namespace the process sits deep in the host's hierarchy.
    write(tmp_path / "cg" / "kubepods" / "pod1" / "cpu.max", "300000 100000\n")
    write(tmp_path / "cg" / "kubepods" / "pod1" / "ctr" / "cpu.max", "max 100000\n")
    assert cpus_of(tmp_path, proc="0::/kubepods/pod1/ctr\n") == 3


@pytest.mark.parametrize("mount", ["cpu", "cpu,cpuacct"])
def test_cgroup_v1_cfs_quota(tmp_path, mount):
    write(tmp_path / "cg" / mount / "cpu.cfs_quota_us", "400000\n")
    write(tmp_path / "cg" / mount / "cpu.cfs_period_us", "100000\n")
    proc = "12:cpu,cpuacct:/docker/abc\n11:memory:/docker/abc\n0::/\n"
    assert cpus_of(tmp_path, proc=proc) == 4


def test_cgroup_v1_unlimited(tmp_path):
    write(tmp_path / "cg" / "cpu" / "cpu.cfs_quota_us", "-1\n")
    write(tmp_path / "cg" / "cpu" / "cpu.cfs_period_us", "100000\n")
    assert cpus_of(tmp_path, affinity=6) == 6


def test_no_cgroup_files_at_all(tmp_path):
    assert available_cpus(tmp_path / "none", tmp_path / "no-proc", lambda: 5) == 5


def test_this_machine():
    cpus = available_cpus()
    assert 1 <= cpus <= (os.cpu_count() or 1)


# ---- threads ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("device", "cpus", "workers", "expected"),
    [
        ("cpu", 8, 1, (8, 1)),
        ("cpu", 8, 2, (4, 1)),
        ("cpu", 16, 1, (16, 2)),
        ("cpu", 1, 4, (1, 1)),
        ("cuda", 8, 1, (1, 7)),
        ("cuda", 8, 2, (1, 6)),
        ("cuda", 1, 1, (1, 1)),
    ],
)
def test_thread_counts(device, cpus, workers, expected):
    counts = thread_counts(device, cpus, workers)
    assert (counts.model_threads, counts.preprocess_threads) == expected


def test_thread_counts_keep_explicit_settings():
    counts = thread_counts("cpu", 8, 2, model_threads=3, preprocess_threads=5)
    assert (counts.model_threads, counts.preprocess_threads) == (3, 5)
