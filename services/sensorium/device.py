"""Everything about devices in one place: which device, which precision, how many CPU threads.

`auto` runs on CUDA when every library the hosted services need can use it, else on the CPU with
a warning that says why. `cuda` fails fast instead: a GPU pod must never silently run on CPU.
A CUDA *library* failure (a driver that does not initialise, CTranslate2 unable to load cuBLAS or
cuDNN) counts as "CUDA not usable"; CUDA *out of memory* does not — it is a per-batch condition
(`is_cuda_oom`) that callers answer by splitting the batch or with GPU_OUT_OF_MEMORY.

torch and ctranslate2 are imported only inside the probes: a PDF-only install has neither.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import math
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, TypeVar

log = logging.getLogger("sensorium.device")

DeviceRequest = Literal["auto", "cuda", "cpu"]
Device = Literal["cuda", "cpu"]
Library = Literal["torch", "ctranslate2"]
"""The libraries that run models: torch (open_clip embeddings), ctranslate2 (faster-whisper)."""

T = TypeVar("T")

CudaProbe = Callable[[], int | None]
"""Reports the CUDA devices a library can use: None when the library is not installed, a count
(0 = no GPU visible) otherwise; raises when the library's CUDA support is broken."""

# CTranslate2 4.x (faster-whisper >= 1.1) needs CUDA 12 cuBLAS and cuDNN 9. It loads them lazily,
# at the first kernel, and a missing cuDNN aborts the whole process there — so look first.
CTRANSLATE2_CUDA_LIBRARIES = ("libcublas.so.12", "libcudnn_ops.so.9")


class DeviceError(RuntimeError):
    """CUDA was required (device=cuda) and is not usable; the message says why and what to do."""


@dataclass(frozen=True)
class DevicePlan:
    """Where and how the models run; decided once at start-up by `resolve_device`."""

    device: Device
    reason: str
    """Why this device: shown in logs and in the start-up banner."""
    torch_dtype: Literal["float16", "float32"]
    """open_clip weights and activations: fp16 on GPU; fp32 on CPU, where fp16 is slow."""
    compute_type: Literal["float16", "int8"]
    """CTranslate2 compute type: float16 on GPU, int8 on CPU."""
    cpu_threads: int
    """CPUs this process may use (`available_cpus`), to be split by `thread_counts`."""

    @property
    def is_cuda(self) -> bool:
        return self.device == "cuda"

    def on_cpu(self, reason: str) -> DevicePlan:
        """This plan moved to the CPU: for `auto` when a model's warm-up hits a CUDA library
        failure that the probes could not see (see `is_cuda_library_error`)."""
        return replace(self, device="cpu", reason=reason, torch_dtype="float32", compute_type="int8")


def _plan(device: Device, reason: str, cpus: int) -> DevicePlan:
    if device == "cuda":
        return DevicePlan("cuda", reason, "float16", "float16", cpus)
    return DevicePlan("cpu", reason, "float32", "int8", cpus)


def resolve_device(
    requested: DeviceRequest,
    *,
    libraries: Iterable[Library] = ("torch", "ctranslate2"),
    probes: Mapping[Library, CudaProbe] | None = None,
    cpus: int | None = None,
) -> DevicePlan:
    """Decide the device for the models that `libraries` run (those of the hosted services).

    `probes` replaces the real ones (tests fake the machine); `cpus` replaces `available_cpus()`.
    Raises `DeviceError` when `requested` is "cuda" and CUDA is not usable by every library.
    """
    libraries = tuple(dict.fromkeys(libraries))  # de-duplicated, in order; iterated twice
    cpu_count = cpus if cpus is not None else available_cpus()
    if requested == "cpu":
        # No probing at all: importing torch only to ignore the GPU costs seconds.
        return _plan("cpu", "device=cpu was requested", cpu_count)
    if requested not in ("auto", "cuda"):
        raise ValueError(f"unknown device {requested!r}: use auto, cuda or cpu")
    probe_for = {**DEFAULT_PROBES, **(probes or {})}

    usable: list[str] = []
    problems: list[str] = []
    for library in libraries:
        try:
            count = probe_for[library]()
        except Exception as exc:
            problems.append(f"{library}: CUDA failed to initialise: {exc}")
            continue
        if count is None:
            # Its service cannot load anyway and will say so; it has no say in the device.
            log.debug("%s is not installed; not probed", library)
        elif count == 0:
            problems.append(f"{library}: no CUDA device visible (no GPU, or no driver)")
        else:
            usable.append(f"{library} sees {count} CUDA device{'s' if count > 1 else ''}")

    if not usable and not problems:
        if requested == "cuda":
            raise DeviceError(
                "device=cuda was requested, but none of the hosted services' model libraries "
                f"({', '.join(libraries) or 'none'}) is installed"
            )
        return _plan("cpu", "no installed model library uses a GPU", cpu_count)
    if not problems:
        plan = _plan("cuda", "; ".join(usable), cpu_count)
        log.info("models run on CUDA (%s)", plan.reason)
        return plan
    why = "; ".join(problems)
    if requested == "cuda":
        raise DeviceError(
            f"device=cuda was requested, but CUDA is not usable: {why}. Fix the GPU setup "
            "(driver, CUDA 12 cuBLAS and cuDNN 9 libraries on the library path) or set "
            "SENSORIUM_DEVICE=auto to allow the CPU."
        )
    log.warning("CUDA is not usable, models run on the CPU (slow): %s", why)
    return _plan("cpu", f"CUDA not usable: {why}", cpu_count)


def load_with_fallback(
    requested: DeviceRequest, plan: DevicePlan, load: Callable[[DevicePlan], T], *, what: str
) -> tuple[T, DevicePlan]:
    """`load(plan)` (load and warm up a model), and the plan it ran on.

    Under `auto`, a CUDA *library* failure that only shows at the first kernel (the probes load
    libraries, not kernels) moves the model to the CPU with a warning; anything else, and any
    failure under `cuda`, is raised. Blocking: call it off the event loop.
    """
    try:
        return load(plan), plan
    except Exception as exc:
        if not (requested == "auto" and plan.is_cuda and is_cuda_library_error(exc)):
            raise
        log.warning("CUDA failed at warm-up; the %s model runs on the CPU: %s", what, exc)
        fallback = plan.on_cpu(f"CUDA failed at warm-up: {exc}")
        return load(fallback), fallback


def probe_torch() -> int | None:
    """CUDA devices torch can use, after creating a CUDA context (where driver problems show)."""
    try:
        import torch  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return 0
    # is_available() does not initialise CUDA; a tiny allocation does, and fails if it must.
    torch.zeros(1, device="cuda")
    count: int = torch.cuda.device_count()
    return count


def probe_ctranslate2(
    load_library: Callable[[str], Any] = ctypes.CDLL,
    libraries: Iterable[str] = CTRANSLATE2_CUDA_LIBRARIES,
) -> int | None:
    """CUDA devices CTranslate2 can use, after loading the cuBLAS and cuDNN it will need."""
    try:
        import ctranslate2
    except ImportError:
        return None
    count: int = ctranslate2.get_cuda_device_count()
    if count == 0:
        return 0
    # Queries the device through the CUDA runtime: a broken driver/runtime pairing fails here.
    ctranslate2.get_supported_compute_types("cuda")
    if sys.platform.startswith("linux"):
        for name in libraries:
            try:
                load_library(name)
            except OSError as exc:
                raise RuntimeError(f"cannot load {name} ({exc})") from exc
    return count


DEFAULT_PROBES: dict[Library, CudaProbe] = {"torch": probe_torch, "ctranslate2": probe_ctranslate2}


# Messages of CUDA set-up failures that only surface at the first kernel (a model's warm-up).
_LIBRARY_ERROR_MARKERS = (
    "libcublas",
    "libcudnn",
    "cannot load symbol cudnn",
    "cuda driver version is insufficient",
    "no cuda-capable device",
    "cuda driver initialization failed",
    "cudaerrorinsufficientdriver",
    "cudaerrornodevice",
)


def is_cuda_oom(exc: BaseException) -> bool:
    """True for CUDA out of memory (torch's, CTranslate2's, cuBLAS's), here or in its causes."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        torch = sys.modules.get("torch")  # only if already loaded: never import it here
        oom_type = getattr(getattr(torch, "cuda", None), "OutOfMemoryError", None)
        if isinstance(oom_type, type) and isinstance(current, oom_type):
            return True
        message = str(current).lower()
        if (
            "cuda out of memory" in message
            or "cuda failed with error out of memory" in message  # CTranslate2
            or "cublas_status_alloc_failed" in message
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


def is_cuda_library_error(exc: BaseException) -> bool:
    """True when `exc` says a CUDA library or driver is missing or broken (not out of memory)."""
    if is_cuda_oom(exc):
        return False
    message = str(exc).lower()
    return any(marker in message for marker in _LIBRARY_ERROR_MARKERS)


def available_cpus(
    cgroup_root: Path = Path("/sys/fs/cgroup"),
    proc_self_cgroup: Path = Path("/proc/self/cgroup"),
    affinity: Callable[[], int] | None = None,
) -> int:
    """The CPUs this process may really use: the least of its CPU affinity and its cgroup CPU
    quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us`), over its cgroup and every parent; at least 1.

    `os.cpu_count()` alone counts the host's CPUs: in a pod limited to 2 CPUs on a 64-core node,
    64 threads would be throttled, not faster. The quota is rounded down for the same reason.
    """
    cpus = (affinity or _affinity)()
    quota = _cgroup_quota(cgroup_root, proc_self_cgroup)
    if quota is not None:
        cpus = min(cpus, math.floor(quota))
    return max(1, cpus)


def _affinity() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1  # macOS and Windows have no affinity API here


def _cgroup_quota(root: Path, proc_self_cgroup: Path) -> float | None:
    """The tightest CPU quota on the process's cgroup path, in CPUs; None when unlimited."""
    v2_path, v1_path = "/", "/"
    try:
        for line in proc_self_cgroup.read_text().splitlines():
            hierarchy, controllers, path = line.split(":", 2)
            if hierarchy == "0" and controllers == "":
                v2_path = path
            elif "cpu" in controllers.split(","):
                v1_path = path
    except (OSError, ValueError):
        pass  # no /proc (not Linux) or an unexpected format: the mount roots still count

    quotas: list[float] = []
    # cgroup v2: one unified hierarchy. Inside a container's cgroup namespace the process's own
    # cgroup is the root, so the root's cpu.max is the pod's limit.
    for directory in _with_parents(root, v2_path):
        quota = _read_cpu_max(directory / "cpu.max")
        if quota is not None:
            quotas.append(quota)
    # cgroup v1: the cpu controller has its own mount.
    for mount in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        for directory in _with_parents(root / mount, v1_path):
            quota = _read_cfs(directory)
            if quota is not None:
                quotas.append(quota)
    return min(quotas) if quotas else None


def _with_parents(root: Path, cgroup_path: str) -> list[Path]:
    """`root/cgroup_path` and each parent up to `root`: a parent's quota caps its children."""
    parts = [part for part in cgroup_path.strip("/").split("/") if part and part != ".."]
    return [root.joinpath(*parts[:depth]) for depth in range(len(parts), -1, -1)]


def _read_cpu_max(path: Path) -> float | None:
    # "max 100000" = no limit; "200000 100000" = 2 CPUs.
    try:
        quota, period = path.read_text().split()[:2]
        if quota == "max":
            return None
        return int(quota) / int(period)
    except (OSError, ValueError, ZeroDivisionError):
        return None


def _read_cfs(directory: Path) -> float | None:
    # cpu.cfs_quota_us is -1 when unlimited.
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text())
        period = int((directory / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    if quota <= 0 or period <= 0:
        return None
    return quota / period


@dataclass(frozen=True)
class CpuBudget:
    """How the process's CPUs are split among the services it hosts (`split_cpus`)."""

    cpus: int
    """CPUs the process may use."""
    shares: dict[str, int]
    """CPUs each hosted service sizes itself for (workers, threads), by service name."""
    fixed: frozenset[str]
    """Services whose share their own settings fixed."""

    def describe(self) -> str:
        """For the start-up log: "2 CPUs: pdf 1, embedding 1 (set)"."""
        parts = [f"{name} {share}{' (set)' if name in self.fixed else ''}"
                 for name, share in self.shares.items()]
        total = sum(self.shares.values())
        over = f"; {total} in all, more than the CPUs" if total > self.cpus else ""
        return f"{self.cpus} CPUs: {', '.join(parts) or 'no services'}{over}"


def split_cpus(cpus: int, services: Iterable[str], fixed: Mapping[str, int] | None = None) -> CpuBudget:
    """Split `cpus` among `services`, once per process.

    The rule: a service whose own settings size it (`fixed`, e.g. SENSORIUM_PDF__WORKERS=3)
    gets that many; the CPUs left are shared equally by the others, at least one each, a
    remainder going to the first services in order. Each service sizing itself for every CPU,
    as it would alone, oversubscribes a process hosting three of them about 3x: torch's and
    CTranslate2's thread pools and the PDF workers then fight over the same cores.
    """
    names = list(dict.fromkeys(services))
    fixed = {name: max(1, count) for name, count in (fixed or {}).items() if name in names and count > 0}
    cpus = max(1, cpus)
    free = [name for name in names if name not in fixed]
    left = max(0, cpus - sum(fixed.values()))
    shares: dict[str, int] = {}
    for name in names:
        if name in fixed:
            shares[name] = fixed[name]
        else:
            index = free.index(name)
            shares[name] = max(1, left // len(free) + (1 if index < left % len(free) else 0))
    return CpuBudget(cpus, shares, frozenset(fixed))


@dataclass(frozen=True)
class ThreadCounts:
    """How a service's CPUs are split."""

    model_threads: int
    """Intra-op threads of each model worker (CTranslate2 `cpu_threads`, torch threads)."""
    preprocess_threads: int
    """Threads decoding and preprocessing inputs (images, texts) outside the model thread."""


def thread_counts(
    device: Device,
    cpus: int,
    workers: int = 1,
    *,
    model_threads: int = 0,
    preprocess_threads: int = 0,
) -> ThreadCounts:
    """Split `cpus` between `workers` model workers and the preprocessing pool (0 = decide).

    On CPU the model does almost all the work (CLIP ViT-B/32: ~3.5 images/s per core; decoding:
    ~100 per core), so the workers share every CPU and preprocessing gets one CPU in eight.
    On CUDA the GPU does the model's work and each worker needs one CPU to drive it, so the rest
    go to preprocessing, which becomes the limit.
    """
    cpus, workers = max(1, cpus), max(1, workers)
    if device == "cuda":
        model = model_threads or 1
        preprocess = preprocess_threads or max(1, cpus - workers)
    else:
        model = model_threads or max(1, cpus // workers)
        preprocess = preprocess_threads or max(1, cpus // 8)
    return ThreadCounts(model, preprocess)


class DeviceGate:
    """The process's one device decision, made when the first model runtime starts (probing
    imports torch and creates a CUDA context: seconds, so never at import or for PDF only)."""

    def __init__(
        self, requested: DeviceRequest, libraries: Iterable[Library],
        resolve: Callable[..., DevicePlan] = resolve_device,
    ) -> None:
        self.requested = requested
        self.libraries = tuple(dict.fromkeys(libraries))
        self._resolve = resolve
        self._outcome: DevicePlan | DeviceError | None = None
        self._lock = asyncio.Lock()

    async def plan(self, cpus: int) -> DevicePlan:
        """The device plan, with `cpus` (the asking service's share) as its CPU count.
        Raises `DeviceError` when device=cuda and CUDA is not usable."""
        async with self._lock:
            if self._outcome is None:
                try:
                    self._outcome = await asyncio.to_thread(
                        self._resolve, self.requested, libraries=self.libraries, cpus=cpus
                    )
                except DeviceError as exc:
                    self._outcome = exc
        if isinstance(self._outcome, DeviceError):
            raise self._outcome
        return DevicePlan(self._outcome.device, self._outcome.reason, self._outcome.torch_dtype,
                          self._outcome.compute_type, cpus)
