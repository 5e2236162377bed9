"""The index job (`sensorium index`): inputs, engines, writer and pipeline put together.

    listing (`inputs.py`) -> plan (the writer skips what is unchanged) -> the pipeline
    (`pipeline.py`: per file, the kind table's producer) -> writer -> summary (`progress.py`)

The engines are the one seam's (`sensorium.engines`): the runtimes of this process, or a
deployment's services with `--server`; the job's code is the same either way.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sensorium.embedding.api import EMBEDDING
from sensorium.engines import Engines, EnginesUnavailable
from sensorium.errors import SensoriumError, ServiceStartError
from sensorium.exits import Exit
from sensorium.index.inputs import JobError, list_inputs
from sensorium.index.kinds import ModelMismatch, manifest_options, services_needed
from sensorium.index.layout import (
    SCHEMA_VERSION,
    EmbeddingSpace,
    IndexBusyError,
    IndexLayoutError,
    IndexMismatchError,
    Manifest,
    Shard,
)
from sensorium.index.pipeline import ModelFacts, Pipeline
from sensorium.index.progress import Progress, Tally
from sensorium.index.writer import FileStat, IndexWriter
from sensorium.settings import Settings

if TYPE_CHECKING:
    from sensorium.device import DeviceGate
    from sensorium.runtimes import Runtimes

log = logging.getLogger("sensorium.index")


@dataclass(frozen=True)
class JobRequest:
    """What `sensorium index` was asked (its flags); everything else comes from the settings."""

    inputs: list[Path]
    out: Path
    shard: Shard
    manifest: Path | None = None
    server: str | None = None
    """HOST:PORT of a deployment to call; None: the runtimes run in this process."""
    client_options: dict[str, Any] = field(default_factory=dict)
    """`sensorium.client.Client` keywords (TLS, token, timeout) for `server`."""
    progress_bar: bool = False


def manifest_for(facts: ModelFacts, settings: Settings) -> Manifest:
    """The manifest of an index this job writes: the space, and every option that changes rows
    (the chunking's, and each kind's: `sensorium.index.kinds`)."""
    options = {
        "context_length": facts.context_length,
        "chunk_overlap_tokens": settings.index.chunk_overlap_tokens,
        **manifest_options(settings),
    }
    return Manifest(facts.space, options, SCHEMA_VERSION)


def job_services() -> list[str]:
    """The services the index job runs: its kinds' and embedding, in the registry's order."""
    from sensorium.registry import SERVICES

    wanted = services_needed()
    return [name for name in SERVICES if name in wanted]


def files_in_flight(settings: Settings) -> int:
    """`SENSORIUM_INDEX__FILES_IN_FLIGHT`, or twice the PDF workers (SENSORIUM_PDF__WORKERS,
    else this process's CPU budget: SENSORIUM_CPUS or what its CPU limit allows), at least 4."""
    from sensorium.runtimes import cpu_split

    if settings.index.files_in_flight:
        return settings.index.files_in_flight
    workers = settings.pdf.workers or cpu_split(settings, job_services()).cpus
    return max(4, 2 * workers)


async def run_job(request: JobRequest, settings: Settings, engines: Engines | None = None) -> dict[str, Any]:
    """Run the job; the summary (see `Tally.to_json`). Raises `JobError` with its exit code.

    `engines`: engines to use and leave open, for a caller that runs several jobs on models it
    loaded once (bench/index.py); None: made from the request (`--server` or in-process),
    started and closed here."""
    tally = Tally()
    files = [path for path in list_inputs(request.inputs, request.manifest, exclude=request.out)
             if request.shard.owns(path)]
    owned = engines is None
    engines = engines if engines is not None else await job_engines(request, settings)
    where = f"the server at {request.server}" if request.server else "the engines"
    try:
        facts = await _model_facts(engines, where)
        writer = _writer(request, settings, manifest_for(facts, settings))
        with writer:
            stats = []
            for path in files:
                try:
                    stats.append(FileStat.of(path))
                except OSError:
                    continue  # gone since it was listed: as if it had not been listed
            plan = writer.plan(stats)
            tally.listed, tally.todo = len(stats), len(plan.todo)
            tally.unchanged, tally.removed = len(plan.unchanged), len(plan.removed)
            log.info("index plan", extra={"shard": str(request.shard), "listed": tally.listed,
                                          "todo": tally.todo, "unchanged": tally.unchanged,
                                          "removed": tally.removed})
            progress = Progress(tally, bar=request.progress_bar)
            pipeline = Pipeline(engines, writer, settings, facts, tally, progress,
                                files_in_flight=files_in_flight(settings))
            try:
                await pipeline.run(plan.todo)
            except EnginesUnavailable as exc:
                raise JobError(f"{where} cannot be used: {exc}; what finished is saved, rerun to go on",
                               Exit.TRANSIENT) from None
            except ModelMismatch as exc:
                raise JobError(str(exc), Exit.CONFIG) from None
            finally:
                progress.close()
        summary = writer.close()
        result = tally.to_json(request.out, request.shard, summary.parts)
        result["compacted"] = await asyncio.to_thread(_compact_if_due, request, settings)
        result["store"] = await asyncio.to_thread(refresh_store, request.out, settings)
        return result
    finally:
        if owned:
            await engines.close()


def _compact_if_due(request: JobRequest, settings: Settings) -> dict[str, int] | None:
    """Compact the run's shard when it holds more small parts than the setting allows."""
    from sensorium.index.compact import compact, small_parts

    index = settings.index
    folder = request.out / request.shard.name
    if not index.compact_small_parts or small_parts(folder, index.rows_per_part) <= index.compact_small_parts:
        return None
    try:
        stats = compact(request.out, rows_per_part=index.rows_per_part, only=request.shard)
    except (IndexBusyError, IndexLayoutError) as exc:
        log.warning("compaction skipped: %s", exc)
        return None
    log.info("index compacted", extra=stats.to_json())
    return stats.to_json()


def refresh_store(out: Path, settings: Settings, *, rebuild: bool = False) -> dict[str, Any]:
    """Bring the index's search store up to date with what is live (the only writer of the
    store: searches never write it); what changed, for the summary. Shards that end together
    take turns (the store's lock)."""
    from sensorium.index.store import VectorIndexParams, update_store

    try:
        stats = update_store(out, params=VectorIndexParams.from_settings(settings.index), rebuild=rebuild)
    except IndexLayoutError as exc:
        raise JobError(str(exc), Exit.OUTPUT) from None
    log.info("search store updated", extra={"rows": stats.rows, "passages": stats.passages,
                                            "files_added": stats.units_added,
                                            "files_removed": stats.units_removed,
                                            "seconds": round(stats.seconds, 2)})
    return {"rows": stats.rows, "passages": stats.passages, "files_added": stats.units_added,
            "files_removed": stats.units_removed, "vector_index": stats.vector_index,
            "seconds": round(stats.seconds, 3)}


async def _model_facts(engines: Engines, where: str) -> ModelFacts:
    """Start the embedding model and learn its space; fail the job when it cannot be used."""
    try:
        embedding = await engines.open(EMBEDDING)
        info = await embedding.describe()
        # Remotely, this loads the tokenizer that cuts text into chunks for the server's model
        # and checks that it reads as many tokens: better to stop now than fail every file.
        await asyncio.to_thread(embedding.count_tokens, "")
    except ServiceStartError as exc:
        raise JobError(f"cannot start the models: {exc}", Exit.CONFIG) from None
    except SensoriumError as exc:
        raise JobError(f"the embedding model cannot be used: {exc.message}", Exit.CONFIG) from None
    except EnginesUnavailable as exc:
        raise JobError(f"{where} cannot be used: {exc}; nothing was indexed, rerun when it answers",
                       Exit.TRANSIENT) from None
    return ModelFacts(EmbeddingSpace.of(info.space), info.context_length)


def _writer(request: JobRequest, settings: Settings, manifest: Manifest) -> IndexWriter:
    index = settings.index
    try:
        return IndexWriter(request.out, request.shard, manifest, rows_per_part=index.rows_per_part,
                           commit_seconds=index.commit_seconds)
    except IndexMismatchError as exc:
        raise JobError(f"{exc} (to change the model, the options or the shard count, index "
                       "into a new folder)", Exit.CONFIG) from None
    except (IndexBusyError, IndexLayoutError) as exc:
        raise JobError(str(exc), Exit.OUTPUT) from None
    except OSError as exc:
        raise JobError(f"cannot write the index at {request.out}: {exc.strerror}", Exit.OUTPUT) from None


async def job_engines(request: JobRequest, settings: Settings) -> Engines:
    """The engines of `request`: --server's, or the runtimes of this process (started on use)."""
    from sensorium.engines import InProcessEngines, RemoteEngines

    if request.server:
        from sensorium.client import Client

        return RemoteEngines(Client(request.server, **request.client_options), settings)
    return InProcessEngines(await local_runtimes(settings))


async def local_runtimes(settings: Settings, *, device: DeviceGate | None = None) -> Runtimes:
    """The runtimes of a job without `--server`, not yet started.

    The CPUs are split as for the server (`split_cpus`), but when the embedding model runs on
    the CPU and SENSORIUM_EMBEDDING__CPU_THREADS is unset, it gets every CPU of the process:
    there it is the slowest stage by far (CLIP ViT-B/32 on 1 core: ~3.5 images/s) while PDF
    extraction and Whisper wait on it, idle, most of the time (docs/benchmarks.md, Index job).
    The other services keep their shares. Deciding the device here resolves the process's
    one `DeviceGate` early, the gate the runtimes then use: probed once, warned about once.
    `device` replaces the gate (tests fake the machine).
    """
    from sensorium.device import DeviceError, DeviceGate
    from sensorium.registry import spec
    from sensorium.runtimes import Runtimes, cpu_split

    services = job_services()
    libraries = [library for name in services for library in spec(name).libraries]
    gate = device or DeviceGate(settings.device, libraries)
    budget = cpu_split(settings, services)
    if not settings.embedding.cpu_threads:
        try:
            on_cpu = not (await gate.plan(budget.shares["embedding"])).is_cuda
        except DeviceError:
            on_cpu = False  # device=cuda without CUDA: starting the model fails and says why
        if on_cpu:
            shares = {**budget.shares, "embedding": budget.cpus}
            others = ", ".join(f"{name} {share}" for name, share in shares.items() if name != "embedding")
            log.info(
                "the embedding model runs on the CPU and gets all %d CPUs (the split gave it "
                "%d; %s as split): it is the job's slowest stage there; "
                "SENSORIUM_EMBEDDING__CPU_THREADS=N sets its threads instead",
                budget.cpus, budget.shares["embedding"], others)
            budget = replace(budget, shares=shares)
    return Runtimes(settings, services, device=gate, cpu=budget)
