"""The media runtime: image text and video frames in worker processes, with their metrics.

`read_image_text(path, options)` decodes an image (HEIC too), reads its EXIF time and camera,
checks a photo for text cheaply and recognises text where there is some
(`sensorium.media.text`); `extract_frames(path, options)` picks a video's frames at scene
changes (`sensorium.media.video`). Both run in the generic worker pool (`sensorium.workers`):
FFmpeg and the image decoders meet hostile files, OCR models take memory and a long video a
core for minutes, so each file gets a time limit, a memory cap, crash isolation and recycled
workers; a caller that goes away frees its worker at once. It is the in-process `MediaEngine`
of the one seam (`sensorium.engines`).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, TypeVar

from sensorium import metrics
from sensorium.contract import RuntimeContext
from sensorium.errors import Reason, SensoriumError, ServiceStartError
from sensorium.media import text, video
from sensorium.media.api import (
    ImageText,
    ImageTextOptions,
    MediaEngine,
    TextStatus,
    VideoFrames,
    VideoOptions,
)
from sensorium.workers import PoolLimits, Wording, WorkerPool

T = TypeVar("T")

WORDING = Wording(
    service="media", settings="media", verb="decoding", item="file", pending_setting="max_pending",
    crash_advice="the file is probably damaged: do not retry it as is",
    timeout_advice="send a shorter or smaller file",
)
PRELOAD = ("sensorium.media.text", "sensorium.media.video", "sensorium.embedding.images")
# (the registry's `worker_modules` for the service names the same)
"""Imported once in the forkserver, so a new worker does not import them again (PyAV, Pillow
and its HEIF plugin, numpy: ~0.3 s). RapidOCR and onnxruntime are imported by a worker when it
first reads text, as the OCR sessions must be made after the fork."""
MAX_PREVIEW_SIDE = 1024
"""The largest preview a caller may ask for (`ImageTextOptions.preview_side`)."""
VIDEO_BUDGET_SHARE = 0.5
"""Share of `media.timeout_seconds` after which a video's decoding keeps to key frames."""


class MediaRuntime:
    """Media work in worker processes; `start()` before use, `close()` after."""

    def __init__(self, context: RuntimeContext) -> None:
        self.settings = context.settings.media
        self.workers = self.settings.workers or context.cpus
        self.budget = context.budget
        self._log_config = (context.settings.log_level, context.settings.log_format)
        self.text_options = text.TextOptions(
            photo_check_side=self.settings.photo_check_side, read_side=self.settings.read_side,
            min_confidence=self.settings.min_confidence, threads=1,
        )
        self._pool: WorkerPool | None = None

    @property
    def pool(self) -> WorkerPool:
        if self._pool is None:
            raise SensoriumError(Reason.NOT_READY, "the media service is starting; retry shortly",
                                 retry_after_seconds=1.0)
        return self._pool

    async def start(self) -> None:
        needed = {"PyAV": "av", **({"RapidOCR": "rapidocr"} if self.settings.ocr else {})}
        missing = [name for name, module in needed.items() if importlib.util.find_spec(module) is None]
        if missing:
            raise ServiceStartError(
                f"the media service needs {' and '.join(missing)}: install the `media` extra "
                "(pip install 'sensorium[media]')"
                + ("; or set SENSORIUM_MEDIA__OCR=false to run without text recognition"
                   if missing == ["RapidOCR"] else ""))
        limits = PoolLimits(
            timeout_seconds=self.settings.timeout_seconds, memory_mb=self.settings.worker_memory_mb,
            recycle_after=self.settings.recycle_after_tasks, max_pending=self.settings.max_pending,
        )
        pool = WorkerPool(limits, WORDING, workers=self.workers, preload=PRELOAD,
                          on_worker_restart=_count_restart, log_config=self._log_config)
        try:
            await pool.warm_up()
            if self.settings.ocr:
                # Every worker loads the OCR models and runs them once now (the first inference
                # allocates onnxruntime's arenas), so the first image is not slow.
                # Scheduled together: `run` sends each to the least loaded worker, one each.
                await asyncio.gather(*(pool.run(text.warm_up, self.text_options)
                                       for _ in range(self.workers)))
        except Exception as exc:
            await pool.close()
            raise ServiceStartError(f"the media worker processes did not start: {exc}") from exc
        self._pool = pool

    async def close(self, grace: float | None = None) -> None:
        # In-flight files have had the server's grace period already; workers stop now.
        if self._pool is not None:
            await self._pool.close()

    async def read_image_text(
        self, path: str | os.PathLike[str], options: ImageTextOptions
    ) -> ImageText:
        """See `MediaEngine.read_image_text`; raises `SensoriumError` for a file that cannot be
        decoded, is too large, or took too long."""
        pool = self.pool
        read = options.read_text and self.settings.ocr
        found: ImageText = await _measured("image_text", pool.run(
            text.read_image, os.fspath(path), self.text_options if read else None,
            max_bytes=self.settings.max_image_bytes, max_pixels=self.settings.max_pixels,
            without_text=TextStatus.SKIPPED if not options.read_text else TextStatus.DISABLED,
            preview_side=min(max(0, options.preview_side), MAX_PREVIEW_SIDE),
        ))
        metrics.MEDIA_TEXT.labels(found.status.value).inc()
        return found

    async def extract_frames(
        self, path: str | os.PathLike[str], options: VideoOptions
    ) -> VideoFrames:
        """See `MediaEngine.extract_frames`; raises `SensoriumError` for a file that is no
        video, is damaged or cut short, or took too long."""
        pool = self.pool
        cap = self.settings.max_frames_per_video
        frame_options = video.FrameOptions(
            interval_seconds=self.settings.frame_interval_seconds,
            max_frames=min(options.max_frames, cap) if options.max_frames > 0 else cap,
            scene_threshold=self.settings.scene_threshold, max_side=self.settings.frame_max_side,
            max_pixels=self.settings.max_pixels, threads=1,
            time_budget_seconds=VIDEO_BUDGET_SHARE * self.settings.timeout_seconds,
        )
        return await _measured("video_frames", pool.run(
            video.extract_frames, os.fspath(path), frame_options))


async def _measured(operation: str, work: Awaitable[T]) -> T:
    started, outcome = time.perf_counter(), "ok"
    try:
        return await work
    except SensoriumError as error:
        outcome = error.reason.name
        raise
    except BaseException:
        outcome = "cancelled"
        raise
    finally:
        metrics.MEDIA_FILES.labels(operation, outcome).inc()
        metrics.MEDIA_SECONDS.labels(operation).observe(time.perf_counter() - started)


def _count_restart(reason: str) -> None:
    metrics.WORKER_RESTARTS.labels("media", reason).inc()


if TYPE_CHECKING:
    _ENGINE: type[MediaEngine] = MediaRuntime  # mypy: the runtime is the in-process MediaEngine
