"""The per-user query process: `sensorium search` answered warm.

The first search starts it (`query`, with `start=True`); it keeps a `QueryEngine` (the text
tower loaded, stores open) and exits after `SENSORIUM_INDEX__SEARCH_DAEMON_IDLE_SECONDS`
without a request. Later commands send their query over a Unix socket and print the answer:
they import none of the query path (this module's client half is stdlib only).

- **One user**: the socket lives in a directory only its user can enter (`$XDG_RUNTIME_DIR`, or
  `/tmp/sensorium-UID`, created 0700 and refused when anyone else could enter or own it), and
  the process answers only peers of its own uid (SO_PEERCRED), whoever reached the socket.
- **One configuration**: the socket's name is a digest of the `SENSORIUM_*` environment (paths
  made absolute) and the Sensorium version, so a command reaches only a process started with
  the same settings; another configuration gets its own.
- **Never stale**: before each query the engine compares the index's files with those its open
  store was opened on (`query.index_signature`) and opens it again when they differ.
- **Protocol**: one JSON object per line. A request
  `{"protocol": 1, "op": "search", "index": DIR, "query": TEXT, "mode": M, "k": N, "kinds": [...]}`
  (or `{"protocol": 1, "op": "ping"}`) gets one reply: `{"ok": true, "hits": [HIT...]}` with each
  hit as `Hit.to_json()` plus its `snippet`, or `{"ok": false, "kind": KIND, "message": TEXT}`
  with the kinds of `query.QueryError` (and "denied", "protocol"). `sensorium search` sends
  `{"protocol": 1, "op": "answer", "index": DIR, "request": SearchRequest.to_json()}` and gets
  `{"ok": true, "items": [...], "lag": TEXT}`: the items as `Answer.items` makes them.

Run as `python -m sensorium.index.query_daemon --socket PATH` (what `start` does); it logs to
`PATH` with `.log` for `.sock`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import stat
import struct
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import logging

    from sensorium.index.query import QueryEngine, SearchRequest

# A warm command imports only the client half: the stdlib modules above (argparse, logging,
# subprocess and the query path are imported where they are used).

PROTOCOL = 1
ENV_PREFIX = "SENSORIUM_"
MAX_LINE = 1 << 20
"""Longest request or reply line, in bytes."""
READ_TIMEOUT = 10.0
"""Seconds the process waits for a connected client's request line."""
START_TIMEOUT = 30.0
"""Seconds a command waits for a process it started to listen."""
REPLY_TIMEOUT = 120.0
"""Seconds a command waits for an answer (a first query loads the tower and opens the store)."""
MAX_LOG = 1 << 20
"""The process's log is started afresh past this many bytes."""
_PATH_SETTINGS = ("SENSORIUM_MODEL_DIR",)
_CHECKPOINT_ENDINGS = (".pt", ".pth", ".bin", ".safetensors")


def _log() -> logging.Logger:
    import logging

    return logging.getLogger("sensorium.query_daemon")


class DaemonUnavailable(Exception):
    """No query process answers (none can start, it refused us, or it broke): the caller
    answers the query in its own process."""


# ---- where the process lives ---------------------------------------------------------------


def runtime_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The user's private directory for the socket: $XDG_RUNTIME_DIR/sensorium if the runtime
    directory is set, else /tmp/sensorium-UID. Created 0700; raises `DaemonUnavailable` when it
    is not a directory of this user that only this user can enter."""
    environ = os.environ if environ is None else environ
    uid = os.getuid()
    base = environ.get("XDG_RUNTIME_DIR", "")
    folder = Path(base) / "sensorium" if base and os.path.isabs(base) else Path(f"/tmp/sensorium-{uid}")
    with contextlib.suppress(FileExistsError):
        os.mkdir(folder, 0o700)
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid or info.st_mode & 0o077:
        raise DaemonUnavailable(
            f"{folder} is not a private directory of uid {uid} (owner {info.st_uid}, mode "
            f"{stat.filemode(info.st_mode)}); remove it, or set XDG_RUNTIME_DIR"
        )
    return folder


def daemon_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The `SENSORIUM_*` variables with relative paths made absolute (a process started from
    one folder serves commands run from any other)."""
    environ = os.environ if environ is None else environ
    settings = {name: value for name, value in environ.items() if name.upper().startswith(ENV_PREFIX)}
    for name, value in settings.items():
        upper = name.upper()
        if upper in _PATH_SETTINGS and value:
            settings[name] = os.path.abspath(os.path.expanduser(value))
        elif upper == "SENSORIUM_EMBEDDING__MODEL" and value.startswith("local-dir:"):
            settings[name] = "local-dir:" + os.path.abspath(os.path.expanduser(value[len("local-dir:"):]))
        elif upper == "SENSORIUM_EMBEDDING__PRETRAINED" and (
            os.sep in value or value.endswith(_CHECKPOINT_ENDINGS)
        ):
            settings[name] = os.path.abspath(os.path.expanduser(value))
    return settings


def daemon_key(environ: Mapping[str, str] | None = None) -> str:
    """Digest of what the process's answers depend on: the settings, the installed code (this
    file's path and modification time: an upgrade rewrites it; importlib.metadata's version
    lookup would cost a warm command ~0.1 s), the interpreter, the protocol."""
    code = os.stat(__file__)
    home = (os.environ if environ is None else environ).get("HOME", "")  # the default model dir
    identity = [PROTOCOL, __file__, code.st_mtime_ns, sys.executable, home,
                sorted(daemon_environment(environ).items())]
    return hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:16]


def socket_path(environ: Mapping[str, str] | None = None) -> Path:
    return runtime_dir(environ) / f"query-{daemon_key(environ)}.sock"


# ---- the command's side ----------------------------------------------------------------------


def query(
    index_dir: Path, text: str, *, mode: str = "hybrid", k: int = 10, kinds: Sequence[str] | None = None,
    start: bool = True, environ: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Hits for `text` from the query process of this configuration, started first when there
    is none and `start`. Raises `query.QueryError` for the process's refusals (the same as the
    in-process path raises) and `DaemonUnavailable` when no process answers."""
    reply = _ask({"protocol": PROTOCOL, "op": "search", "index": os.path.abspath(index_dir), "query": text,
                  "mode": mode, "k": k, "kinds": list(kinds) if kinds else None}, start, environ)
    hits: list[dict[str, Any]] = reply["hits"]
    return hits


def answer(
    index_dir: Path, request: SearchRequest, *, start: bool = True, environ: Mapping[str, str] | None = None,
) -> tuple[list[dict[str, Any]], str]:
    """`request` answered by the query process of this configuration (started first when there
    is none and `start`): the items (`Answer.items`) and the store's lag in words. Raises as
    `query` does."""
    reply = _ask({"protocol": PROTOCOL, "op": "answer", "index": os.path.abspath(index_dir),
                  "request": request.to_json()}, start, environ)
    items: list[dict[str, Any]] = reply["items"]
    return items, str(reply.get("lag", ""))


def _ask(request: Mapping[str, Any], start: bool, environ: Mapping[str, str] | None) -> dict[str, Any]:
    from sensorium.index.query import QueryError

    path = socket_path(environ)
    try:
        reply = call(path, request)
    except (FileNotFoundError, ConnectionRefusedError, DaemonUnavailable) as exc:
        # None listens, or one was exiting (idle) as we connected: start one.
        if not start:
            raise DaemonUnavailable(f"no query process answers on {path}: {exc}") from None
        reply = call(start_daemon(path, environ), request)
    if not reply.get("ok"):
        kind, message = reply.get("kind", "internal"), str(reply.get("message", "no message"))
        if kind in ("denied", "protocol"):
            raise DaemonUnavailable(f"the query process on {path} refused the request: {message}")
        raise QueryError(kind, message)
    return reply


def call(path: Path, request: Mapping[str, Any], timeout: float = REPLY_TIMEOUT) -> dict[str, Any]:
    """One request, one reply. Raises FileNotFoundError / ConnectionRefusedError when no
    process listens, `DaemonUnavailable` when one breaks off or answers nonsense."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(timeout)
        connection.connect(str(path))
        try:
            connection.sendall(json.dumps(request).encode() + b"\n")
            line = _read_line(connection)
        except OSError as exc:
            raise DaemonUnavailable(f"the query process on {path} broke off: {exc}") from exc
    try:
        reply = json.loads(line)
    except ValueError:
        reply = None
    if not isinstance(reply, dict):
        raise DaemonUnavailable(f"the query process on {path} answered {line[:80]!r}")
    return reply


def start_daemon(path: Path, environ: Mapping[str, str] | None = None) -> Path:
    """Start a query process for this configuration and wait until it listens on `path`."""
    import subprocess

    environ = dict(os.environ if environ is None else environ)
    child_env = {name: value for name, value in environ.items() if not name.upper().startswith(ENV_PREFIX)}
    child_env.update(daemon_environment(environ))
    log_path = path.with_suffix(".log")
    mode = "wb" if log_path.is_file() and log_path.stat().st_size > MAX_LOG else "ab"
    with open(log_path, mode) as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "sensorium.index.query_daemon", "--socket", str(path)],
            env=child_env, cwd="/", stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
            start_new_session=True,  # not in the command's process group: Ctrl-C does not reach it
        )
    deadline = time.monotonic() + START_TIMEOUT
    delay = 0.005
    while time.monotonic() < deadline:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.connect(str(path))
            return path
        except (FileNotFoundError, ConnectionRefusedError):
            pass
        if process.poll() is not None and process.returncode != 0:
            raise DaemonUnavailable(f"the query process exited ({process.returncode}): {_tail(log_path)}")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    process.kill()
    raise DaemonUnavailable(f"the query process did not listen on {path} within {START_TIMEOUT:.0f} s")


def _tail(path: Path, lines: int = 3) -> str:
    with contextlib.suppress(OSError):
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    return "(no log)"


def _read_line(connection: socket.socket) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = connection.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if b"\n" in chunk or size > MAX_LINE:
            break
    return b"".join(chunks).split(b"\n", 1)[0]


# ---- the process's side ----------------------------------------------------------------------


def peer_uid(connection: socket.socket) -> int:
    """The uid of the process at the other end of a Unix socket (from the kernel)."""
    credentials = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", credentials)
    return int(uid)


class QueryServer:
    """Answers requests on a Unix socket until `idle_seconds` pass without one."""

    def __init__(self, engine: QueryEngine, path: Path, idle_seconds: float) -> None:
        self.engine = engine
        self.path = path
        self.idle_seconds = idle_seconds
        self.uid = -1  # set by `serve`: the user this process runs as

    def serve(self) -> None:
        """Listen (replacing a dead process's socket file) and answer until idle."""
        self.uid = os.getuid()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(self.path))
            os.chmod(self.path, 0o600)
            inode = os.stat(self.path).st_ino
            listener.listen(16)
            listener.settimeout(self.idle_seconds)
            _log().info("query process listening", extra={"socket": str(self.path), "pid": os.getpid()})
            while True:
                try:
                    connection, _ = listener.accept()
                except TimeoutError:
                    _log().info("idle for %.0f s: exiting", self.idle_seconds)
                    return
                with connection:
                    self._answer(connection)
        finally:
            listener.close()
            with contextlib.suppress(FileNotFoundError):
                if os.stat(self.path).st_ino == inode:  # not a successor's socket
                    os.unlink(self.path)

    def _answer(self, connection: socket.socket) -> None:
        connection.settimeout(READ_TIMEOUT)
        try:
            uid = peer_uid(connection)
            if uid != self.uid:
                _log().warning("refused a connection from uid %d", uid)
                reply: dict[str, Any] = {"ok": False, "kind": "denied",
                                         "message": f"this query process serves uid {self.uid} only"}
            else:
                line = _read_line(connection)
                if not line.strip():
                    return  # a probe (`start_daemon` waiting for the socket), or a client that left
                reply = self.handle(line)
            connection.sendall(json.dumps(reply).encode() + b"\n")
        except OSError as exc:  # the client went away: its loss
            _log().info("a client broke off: %s", exc)

    def handle(self, line: bytes) -> dict[str, Any]:
        """The reply to one request line."""
        from sensorium.index.query import QueryError, hit_json

        try:
            request = json.loads(line)
            if not isinstance(request, dict) or request.get("protocol") != PROTOCOL:
                raise ValueError(f"not a protocol {PROTOCOL} request")
        except ValueError as exc:
            return {"ok": False, "kind": "protocol", "message": str(exc)}
        op = request.get("op")
        if op == "ping":
            return {"ok": True, "pid": os.getpid()}
        if op == "answer":
            return self._answer_request(request)
        if op != "search":
            return {"ok": False, "kind": "protocol", "message": f"unknown op {op!r}"}
        started = time.perf_counter()
        try:
            query, mode, k, kinds = request["query"], request["mode"], request["k"], request["kinds"]
            if not isinstance(query, str) or not isinstance(k, int) or not isinstance(mode, str):
                raise QueryError("usage", "query must be text, mode text, k a number")
            hits = self.engine.search(Path(request["index"]), query, mode=mode, k=k, kinds=kinds)  # type: ignore[arg-type]
        except QueryError as exc:
            return {"ok": False, "kind": exc.kind, "message": exc.message}
        except KeyError as exc:
            return {"ok": False, "kind": "protocol", "message": f"the request has no {exc}"}
        except Exception as exc:
            _log().exception("a query failed")
            log_file = self.path.with_suffix(".log")
            message = f"the query process failed ({type(exc).__name__}: {exc}); see {log_file}"
            return {"ok": False, "kind": "internal", "message": message}
        _log().info("query answered", extra={"mode": mode, "hits": len(hits),
                                          "ms": round(1000 * (time.perf_counter() - started), 1)})
        return {"ok": True, "hits": [hit_json(hit, query) for hit in hits]}


    def _answer_request(self, request: Mapping[str, Any]) -> dict[str, Any]:
        from sensorium.index.query import QueryError, SearchRequest

        started = time.perf_counter()
        try:
            search = SearchRequest.from_json(request["request"])
            found = self.engine.answer(Path(request["index"]), search)
        except QueryError as exc:
            return {"ok": False, "kind": exc.kind, "message": exc.message}
        except (KeyError, TypeError) as exc:
            return {"ok": False, "kind": "protocol", "message": f"the request has no {exc}"}
        except Exception as exc:
            _log().exception("a query failed")
            log_file = self.path.with_suffix(".log")
            message = f"the query process failed ({type(exc).__name__}: {exc}); see {log_file}"
            return {"ok": False, "kind": "internal", "message": message}
        items = found.items(search.query)
        _log().info("query answered", extra={"mode": search.mode, "results": len(items),
                                          "ms": round(1000 * (time.perf_counter() - started), 1)})
        return {"ok": True, "items": items, "lag": found.lag}


@contextlib.contextmanager
def _only_process(lock_path: Path) -> Iterator[bool]:
    """Whether this process holds the configuration's lock (one process per socket)."""
    import errno
    import fcntl

    with open(lock_path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise
            yield False
            return
        yield True


def main(argv: Sequence[str] | None = None) -> int:
    import argparse
    import signal

    parser = argparse.ArgumentParser(
        description="Sensorium's per-user query process (started by `sensorium search`)"
    )
    parser.add_argument("--socket", type=Path, required=True, help="the Unix socket to listen on")
    parser.add_argument("--idle-seconds", type=float, default=None,
                        help="exit after this long without a request (default: the setting)")
    args = parser.parse_args(argv)

    from sensorium import logs
    from sensorium.index.query import QueryEngine
    from sensorium.settings import Settings

    settings = Settings()
    logs.configure(settings.log_level, settings.log_format)
    # SIGTERM ends it like the idle timeout: the socket file goes with it.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    with _only_process(args.socket.with_suffix(".lock")) as only:
        if not only:
            _log().info("another query process serves %s", args.socket)
            return 0
        idle = settings.index.search_daemon_idle_seconds if args.idle_seconds is None else args.idle_seconds
        QueryServer(QueryEngine(settings, resident=True), args.socket, idle).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
