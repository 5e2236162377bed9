"""Audio decoding in worker processes (`sensorium.workers`): FFmpeg parses hostile files there,
out of the server process, with an address-space cap, a time limit per file and crash isolation.

A worker decodes a file into a file of raw float32 samples (`audio.decode_to_file`), holding only
a group of frames at a time, so neither the worker nor a pipe ever carries hours of audio; the
runtime reads the samples back. A cancelled call kills its worker (pebble), which is replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import pebble

from sensorium import logs, workers
from sensorium.errors import Reason, SensoriumError
from sensorium.transcription import audio
from sensorium.transcription.audio import DecodeReport

log = logging.getLogger("sensorium.transcription")

RECYCLE_AFTER_FILES = 200
"""A decoder process is replaced after this many tasks (FFmpeg's state and fragmentation)."""
_CLOSE_TIMEOUT_SECONDS = 10.0


# --- worker side ----------------------------------------------------------------------------

_cpu_seconds = 0.0


def _init_worker(memory_mb: int, cpu_seconds: float, log_config: tuple[str, str] | None) -> None:
    """Pebble initializer; it must never raise (a worker failing here breaks the pool)."""
    global _cpu_seconds
    _cpu_seconds = cpu_seconds
    if log_config is not None:
        with contextlib.suppress(Exception):
            level, fmt = log_config
            logs.configure(level, "json" if fmt == "json" else "text")
    workers.limit_memory(memory_mb)


def _estimate(path: str) -> float | None:
    workers.arm_cpu_limit(_cpu_seconds)
    return audio.estimate_seconds(path)


def _decode(path: str, out: str, max_seconds: float, final: bool) -> DecodeReport:
    workers.arm_cpu_limit(_cpu_seconds)
    try:
        return audio.decode_to_file(path, out, max_seconds=max_seconds, final=final)
    except MemoryError:
        raise _memory_error() from None


def _memory_error() -> SensoriumError:
    return SensoriumError(
        Reason.PROCESSING_LIMIT,
        "decoding the audio needs more memory than a decoder process may use; re-encode it "
        "(e.g. `ffmpeg -i in -ac 1 -ar 16000 out.flac`)", setting="transcription.decoder_memory_mb",
    )


# --- server side ----------------------------------------------------------------------------


class AudioDecoderPool:
    """`workers` decoder processes; `on_worker_restart(reason)` hears of every replacement
    ("crash", "timeout", "cancelled")."""

    def __init__(
        self, *, workers: int, memory_mb: int, timeout_seconds: float,
        on_worker_restart: Callable[[str], None] | None = None,
        log_config: tuple[str, str] | None = None,
    ) -> None:
        self.timeout_seconds = timeout_seconds
        self.memory_mb = memory_mb
        self._size = max(1, workers)
        self._initargs = (memory_mb, timeout_seconds, log_config)
        self._on_worker_restart = on_worker_restart or (lambda reason: None)
        self._closed = False
        self._pool = self._new_pool()

    def _new_pool(self) -> pebble.ProcessPool:
        return workers.new_pool(workers=self._size, recycle_after=RECYCLE_AFTER_FILES,
                                initializer=_init_worker, initargs=self._initargs)

    async def warm_up(self) -> None:
        """Start the processes now, so the first file does not wait for them."""
        futures = [self._pool.schedule(workers.arm_cpu_limit, (0.0,)) for _ in range(self._size)]
        await asyncio.gather(*(asyncio.wrap_future(f) for f in futures))

    async def estimate(self, path: str) -> float | None:
        """`audio.estimate_seconds` in a worker."""
        result: float | None = await self._run(_estimate, (path,))
        return result

    async def decode(self, path: str, out: str, *, max_seconds: float, final: bool) -> DecodeReport:
        """`audio.decode_to_file` in a worker."""
        result: DecodeReport = await self._run(_decode, (path, out, max_seconds, final))
        return result

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._pool.stop()
        await asyncio.to_thread(self._pool.join, _CLOSE_TIMEOUT_SECONDS)

    async def _run(self, function: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        if self._closed:
            raise SensoriumError(Reason.SHUTTING_DOWN, "the transcription service is shutting down; "
                                 "retry on another server")
        try:
            future = self._pool.schedule(function, args, timeout=self.timeout_seconds)
        except RuntimeError:  # pebble marked the pool broken (a worker died at a bad moment)
            self._replace_pool()
            future = self._pool.schedule(function, args, timeout=self.timeout_seconds)
        waiter = asyncio.wrap_future(future)
        try:
            # asyncio.wait leaves `waiter` alone when this task is cancelled (awaiting it would
            # cancel the pebble future first), so a running task is seen and counted.
            await asyncio.wait({waiter})
        except asyncio.CancelledError:
            if future.running():
                self._on_worker_restart("cancelled")
            future.cancel()  # kills the worker if it is decoding this file
            raise
        try:
            return waiter.result()
        except TimeoutError:
            self._on_worker_restart("timeout")
            raise self._timed_out() from None
        except pebble.ProcessExpired as error:
            if workers.killed_for_cpu(error):
                self._on_worker_restart("timeout")
                raise self._timed_out() from None
            self._on_worker_restart("crash")
            if error.exitcode is not None and error.exitcode < 0:
                log.warning("an audio decoder process died", extra={"exit_code": error.exitcode})
            raise SensoriumError(
                Reason.PARSER_CRASH,
                f"the audio decoder crashed on this file (exit code {error.exitcode}); do not retry "
                "it as is: re-encode it", {"exit_code": str(error.exitcode)},
            ) from None
        except BrokenProcessPool:
            self._on_worker_restart("crash")
            if not self._closed:
                self._replace_pool()
            raise SensoriumError(Reason.PARSER_CRASH, "an audio decoder process died while decoding "
                                 "this file; do not retry it as is: re-encode it") from None
        except MemoryError:
            raise _memory_error() from None

    def _replace_pool(self) -> None:
        broken, self._pool = self._pool, self._new_pool()
        broken.stop()
        asyncio.get_running_loop().run_in_executor(None, broken.join, _CLOSE_TIMEOUT_SECONDS)

    def _timed_out(self) -> SensoriumError:
        limit = self.timeout_seconds
        return SensoriumError(
            Reason.PROCESSING_LIMIT,
            f"decoding the audio took longer than the limit of {limit:g} s; send a shorter file "
            "or one that decodes faster (e.g. re-encoded as FLAC or Opus)",
            {"limit_seconds": f"{limit:g}"}, setting="transcription.decode_timeout_seconds",
        )
