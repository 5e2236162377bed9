"""The embedding model in a process of its own, fed through shared memory.

Why: an open_clip forward pass is hundreds of small torch calls that each return to Python. In
the server's process that Python holds the GIL the event loop, gRPC and the preprocessing
threads need; in a process of its own it holds only its own (bench/overhead.py measures both).

How: the server starts `python -m sensorium.embedding.model_process FD` with one end of a socket
pair. The child loads and warms up the model exactly as in process (`Embedder.load`, with the
device fallback), creates an anonymous shared-memory file (`memfd_create`: it has no name and no
entry in /dev/shm, and the kernel frees it when the last process holding it is gone, SIGKILL
included) and passes its descriptor back with the model's facts. Per batch the parent copies the
ready inputs into the shared memory, sends a few bytes, and the child runs the towers on them in
place and writes the vectors back. The child ignores Ctrl-C (its parent drains first), exits when
the socket closes and gets SIGTERM when its parent dies (Linux PR_SET_PDEATHSIG).

If the child dies, the batch in it fails with NOT_READY (UNAVAILABLE, retry shortly) and the
runtime (`EmbeddingRuntime`) starts a new one, reporting NOT_SERVING meanwhile.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.reduction import recv_handle, send_handle
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sensorium.device import DevicePlan, DeviceRequest, is_cuda_oom
from sensorium.errors import Reason, SensoriumError, ServiceStartError

log = logging.getLogger("sensorium.embedding")


@dataclass(frozen=True)
class ModelConfig:
    """What the child needs to load the model (picklable)."""

    model: str
    pretrained: str
    model_dir: Path
    device: DeviceRequest
    """The device setting (`auto` may fall back to the CPU at warm-up)."""
    plan: DevicePlan
    model_threads: int
    """torch intra-op threads of the child."""
    capacity: int
    """Most items of one kind in one batch (the Batcher's max batch size); larger calls of
    `run` are split."""
    log_level: str = "INFO"
    log_format: str = "text"


class ModelOutOfMemory(RuntimeError):
    """CUDA out of memory in the child; its message keeps torch's ("CUDA out of memory ..."),
    which `device.is_cuda_oom` recognises, so batches are split as in process."""


class _Layout:
    """Where the inputs and outputs of one batch lie in the shared memory."""

    def __init__(self, image_shape: tuple[int, int, int], context_length: int, dimension: int,
                 capacity: int) -> None:
        self.image_shape, self.context_length = image_shape, context_length
        self.dimension, self.capacity = dimension, capacity
        self.image_bytes = capacity * int(np.prod(image_shape)) * 4
        self.text_bytes = capacity * context_length * 8
        self.out_bytes = 2 * capacity * dimension * 4
        self.size = self.image_bytes + self.text_bytes + self.out_bytes

    def views(self, buffer: mmap.mmap) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64],
                                                 npt.NDArray[np.float32]]:
        images = np.ndarray((self.capacity, *self.image_shape), np.float32, buffer, 0)
        texts = np.ndarray((self.capacity, self.context_length), np.int64, buffer, self.image_bytes)
        out = np.ndarray((2 * self.capacity, self.dimension), np.float32, buffer,
                         self.image_bytes + self.text_bytes)
        return images, texts, out


class ModelProcess:
    """The parent's handle on one model process: `start()`, then `run` batches (the Towers of
    an `Embedder.remote`), `close()`. `on_exit(code)` is called (from a watcher thread) when the
    process ends without `close()`."""

    def __init__(self, config: ModelConfig, on_exit: Callable[[int], None] | None = None) -> None:
        self.config = config
        self._on_exit = on_exit
        self._lock = threading.Lock()  # one batch in the child at a time
        self._conn: Connection | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._memory: mmap.mmap | None = None
        self._views: tuple[Any, Any, Any] | None = None
        self._closing = False
        self.exit_code: int | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self, timeout: float = 900.0) -> Any:
        """Start the child and wait until its model is loaded and warmed up (blocking); returns
        its `ModelFacts`. Raises `ServiceStartError` saying why it could not."""
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        # OpenMP threads that sleep between parallel regions instead of spinning: on a busy or
        # CPU-limited node a spinning thread steals the core its partner needs, and a text batch
        # of the near-free model took 100+ ms instead of 1 ms (bench/overhead.py, 2 threads).
        env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "sensorium.embedding.model_process", str(child_end.fileno())],
                pass_fds=(child_end.fileno(),), stdin=subprocess.DEVNULL, env=env,
            )
        finally:
            child_end.close()
        conn = Connection(parent_end.detach())
        self._conn = conn
        conn.send(self.config)
        deadline = time.monotonic() + timeout
        while not conn.poll(0.2):
            code = self._process.poll()
            if code is not None or time.monotonic() > deadline:
                self.close(0)
                what = f"exited with code {code}" if code is not None else f"did not load in {timeout:g} s"
                raise ServiceStartError(
                    f"the embedding model process {what} before its model was ready; its log says why")
        try:
            message = conn.recv()
            if message[0] == "failed":
                raise ServiceStartError(message[1])
            _, facts, size = message
            memory_fd = recv_handle(conn)
        except (EOFError, OSError) as exc:
            self.close(0)
            raise ServiceStartError(f"the embedding model process stopped while starting ({exc})") from exc
        except ServiceStartError:
            self.close(5)
            raise
        try:
            self._memory = mmap.mmap(memory_fd, size)
        finally:
            os.close(memory_fd)
        layout = _Layout(facts.image_shape, facts.context_length, facts.space.dimension, self.config.capacity)
        self._views = layout.views(self._memory)
        threading.Thread(target=self._watch, name="sensorium-embedding-model-watch", daemon=True).start()
        log.info("embedding model process ready", extra={"pid": self.pid, "shared_bytes": size})
        return facts

    def _watch(self) -> None:
        process = self._process
        assert process is not None
        code = process.wait()
        self.exit_code = code
        if not self._closing and self._on_exit is not None:
            self._on_exit(code)

    def run(
        self, pixels: Sequence[npt.NDArray[np.float32]], tokens: Sequence[npt.NDArray[np.int64]]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """The towers in the child (blocking; the Batcher's worker thread calls it)."""
        capacity = self.config.capacity
        if len(pixels) > capacity or len(tokens) > capacity:
            parts = [self.run(pixels[i:i + capacity], tokens[i:i + capacity])
                     for i in range(0, max(len(pixels), len(tokens)), capacity)]
            return (np.concatenate([p[0] for p in parts if len(p[0])] or [np.zeros((0, 0), np.float32)]),
                    np.concatenate([p[1] for p in parts if len(p[1])] or [np.zeros((0, 0), np.float32)]))
        with self._lock:
            if self._conn is None or self._views is None or self._closing:
                raise _gone(self.exit_code)
            images_in, texts_in, out = self._views
            for index, pixel in enumerate(pixels):
                images_in[index] = pixel
            for index, token in enumerate(tokens):
                texts_in[index] = token
            try:
                self._conn.send(("encode", len(pixels), len(tokens)))
                reply = self._conn.recv()
            except (EOFError, OSError):
                if self._closing:  # killed by close() after the shutdown grace period
                    raise SensoriumError(Reason.SHUTTING_DOWN, "the embedding service is shutting "
                                         "down; retry on another replica", retry_after_seconds=1.0) from None
                raise _gone(self._wait_exit()) from None
            if reply[0] == "oom":
                raise ModelOutOfMemory(reply[1])
            if reply[0] == "error":
                raise RuntimeError(f"the embedding model failed on this batch: {reply[1]}")
            images = out[:len(pixels)].copy()
            texts = out[len(pixels):len(pixels) + len(tokens)].copy()
            return images, texts

    def _wait_exit(self) -> int | None:
        """The child's exit code, once it is gone (it is, or is going: its socket closed)."""
        if self._process is None:
            return None
        with contextlib.suppress(subprocess.TimeoutExpired):
            return self._process.wait(5)
        return None

    def close(self, timeout: float = 10.0) -> None:
        """Stop the child (after the batch it runs), wait up to `timeout` s, then kill it."""
        self._closing = True
        # After the batch in the child, if it ends in time; a hung child is killed regardless.
        locked = self._lock.acquire(timeout=max(timeout, 0.1))
        try:
            if self._conn is not None:
                with contextlib.suppress(OSError):
                    self._conn.send(("stop",))
                if locked:
                    self._conn.close()
                    self._conn = None
            process = self._process
            if process is not None and process.poll() is None:
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    log.warning("the embedding model process did not stop in %gs; killing it", timeout)
                    process.kill()
                    process.wait()
            self._views = None
            if self._memory is not None and locked:
                with contextlib.suppress(BufferError):  # a view still alive: freed with it
                    self._memory.close()
                self._memory = None
        finally:
            if locked:
                self._lock.release()


def _gone(code: int | None) -> SensoriumError:
    how = f" (exit code {code})" if code is not None else ""
    return SensoriumError(
        Reason.NOT_READY,
        f"the embedding model process stopped{how}; the service is restarting it; retry shortly",
        retry_after_seconds=5.0,
    )


# ---- the child -------------------------------------------------------------------------------


def _die_with_parent() -> None:
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def main(argv: list[str]) -> int:
    _die_with_parent()
    # Ctrl-C reaches the whole process group: the parent drains, then stops this process.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn = Connection(int(argv[1]))
    try:
        config: ModelConfig = conn.recv()
    except EOFError:
        return 0
    from sensorium import logs

    logs.configure(config.log_level, "json" if config.log_format == "json" else "text")
    try:
        import torch

        from sensorium.device import load_with_fallback
        from sensorium.embedding.embedder import Embedder, EngineError, LocalTowers

        torch.set_num_threads(config.model_threads)
        engine, _ = load_with_fallback(
            config.device, config.plan,
            lambda plan: Embedder.load(config.model, config.pretrained, config.model_dir, plan),
            what="embedding",
        )
    except EngineError as exc:
        conn.send(("failed", str(exc)))
        return 3
    except Exception as exc:
        log.exception("loading the embedding model failed")
        conn.send(("failed", f"loading {config.model}/{config.pretrained} failed: {exc}"))
        return 3
    facts = engine.facts
    layout = _Layout(facts.image_shape, facts.context_length, facts.space.dimension, config.capacity)
    memory_fd = os.memfd_create("sensorium-embedding", os.MFD_CLOEXEC)
    os.ftruncate(memory_fd, layout.size)
    memory = mmap.mmap(memory_fd, layout.size)
    images_in, texts_in, out = layout.views(memory)
    conn.send(("ready", facts, layout.size))
    send_handle(conn, memory_fd, os.getppid())
    os.close(memory_fd)
    towers = engine.towers
    assert isinstance(towers, LocalTowers)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            message = ("stop",)  # the parent is gone
        if message[0] == "stop":
            # Nothing to save: skip the interpreter's teardown (seconds with torch loaded).
            logging.shutdown()
            os._exit(0)
        _, images, texts = message
        try:
            image_vectors, text_vectors = towers.run_arrays(images_in[:images] if images else None,
                                                            texts_in[:texts] if texts else None)
            if images:
                out[:images] = image_vectors
            if texts:
                out[images:images + texts] = text_vectors
            conn.send(("done",))
        except Exception as exc:
            if is_cuda_oom(exc):
                torch.cuda.empty_cache()
                conn.send(("oom", f"CUDA out of memory in the model process: {exc}"))
            else:
                log.exception("an embedding batch failed in the model process")
                conn.send(("error", f"{type(exc).__name__}: {exc}"))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
