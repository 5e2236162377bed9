"""Audio decoding in worker processes (`sensorium.workers.WorkerPool`, the pool the PDF and
document engines use): FFmpeg parses hostile files there, out of the server process, with an
address-space cap, a time limit per file and crash isolation; a caller that leaves has its
worker killed and replaced.

A worker decodes a file into a file of raw float32 samples (`audio.decode_to_file`), holding only
a group of frames at a time, so neither the worker nor a pipe ever carries hours of audio; the
runtime reads the samples back.
"""

from __future__ import annotations

from collections.abc import Callable

from sensorium.transcription import audio
from sensorium.transcription.audio import DecodeReport
from sensorium.workers import PoolLimits, Wording, WorkerPool

RECYCLE_AFTER_FILES = 200
"""A decoder process is replaced after this many tasks (FFmpeg's state and fragmentation)."""
_WORDING = Wording(
    service="audio decoder", settings="transcription", item="file", verb="decoding",
    crash_advice="do not retry it as is: re-encode it (e.g. `ffmpeg -i in -ac 1 -ar 16000 out.flac`)",
    timeout_advice="send a shorter file or one that decodes faster (e.g. re-encoded as FLAC or Opus)",
    timeout_setting="decode_timeout_seconds", memory_setting="decoder_memory_mb",
    pending_setting="queue_size",
)


class AudioDecoderPool:
    """`workers` decoder processes; `on_worker_restart(reason)` hears of every replacement
    ("crash", "timeout", "cancelled", "recycled"). At most `max_pending` files decode or wait."""

    def __init__(
        self, *, workers: int, memory_mb: int, timeout_seconds: float, max_pending: int,
        on_worker_restart: Callable[[str], None] | None = None,
        log_config: tuple[str, str] | None = None,
    ) -> None:
        limits = PoolLimits(timeout_seconds, memory_mb, RECYCLE_AFTER_FILES, max_pending)
        self._pool = WorkerPool(limits, _WORDING, workers=workers, preload=[audio.__name__],
                                on_worker_restart=on_worker_restart, log_config=log_config)

    async def warm_up(self) -> None:
        """Start the processes now, so the first file does not wait for them."""
        await self._pool.warm_up()

    async def estimate(self, path: str) -> float | None:
        """`audio.estimate_seconds` in a worker."""
        result: float | None = await self._pool.run(audio.estimate_seconds, path)
        return result

    async def decode(self, path: str, out: str, *, max_seconds: float, final: bool) -> DecodeReport:
        """`audio.decode_to_file` in a worker."""
        result: DecodeReport = await self._pool.run(audio.decode_to_file, path, out,
                                                    max_seconds=max_seconds, final=final)
        return result

    async def close(self) -> None:
        await self._pool.close()
