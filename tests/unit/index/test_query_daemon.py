"""The per-user query process: answers as the in-process path does, sees new and retired rows,
exits when idle, serves its own user only, and lives in a private directory."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from query_kit import CAPTIONS, add_captions, remove_captions, shapes_model_dir, shapes_tower
from sensorium.index import query_daemon
from sensorium.index.query import QueryEngine, QueryError, hit_json
from sensorium.index.query_daemon import DaemonUnavailable, QueryServer
from sensorium.settings import Settings


@pytest.fixture(scope="module")
def tower():
    return shapes_tower()


@pytest.fixture
def index(tmp_path, tower) -> Path:
    add_captions(tmp_path / "index", tower, CAPTIONS)
    return tmp_path / "index"


@pytest.fixture
def environ(tmp_path, monkeypatch):
    """The command's environment: the shapes model, a private runtime directory. Every query
    process started under it is stopped afterwards."""
    model_dir, model = shapes_model_dir()
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    settings = {"SENSORIUM_EMBEDDING__MODEL": model, "SENSORIUM_EMBEDDING__PRETRAINED": "",
                "SENSORIUM_MODEL_DIR": str(model_dir), "SENSORIUM_INDEX__SEARCH_DAEMON_IDLE_SECONDS": "60"}
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SENSORIUM_")},
           "XDG_RUNTIME_DIR": str(run), **settings}
    for name, value in settings.items():
        monkeypatch.setenv(name, value)  # Settings() in this process: the in-process path
    yield env
    for socket_file in (run / "sensorium").glob("*.sock"):
        with contextlib.suppress(OSError, DaemonUnavailable):
            reply = query_daemon.call(socket_file, {"protocol": 1, "op": "ping"}, timeout=5)
            os.kill(reply["pid"], signal.SIGTERM)


def ping(environ) -> int:
    return int(query_daemon.call(query_daemon.socket_path(environ), {"protocol": 1, "op": "ping"})["pid"])


def gone(pid: int) -> bool:
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)  # our child (the test started it): reap it
        return finished == pid
    except ChildProcessError:
        return not Path(f"/proc/{pid}").exists()


def test_the_process_answers_as_the_in_process_path(index, environ):
    engine = QueryEngine(Settings())
    for mode in ("hybrid", "vector", "text"):
        for text in ("a red circle", "a yellow triangle"):
            ours = query_daemon.query(index, text, mode=mode, k=5, environ=environ)
            theirs = [hit_json(hit, text) for hit in engine.search(index, text, mode=mode, k=5)]
            assert [hit["path"] for hit in ours] == [hit["path"] for hit in theirs], (mode, text)
            assert [hit["score"] for hit in ours] == pytest.approx([hit["score"] for hit in theirs], rel=1e-5)
            assert [{**hit, "score": 0} for hit in ours] == [{**hit, "score": 0} for hit in theirs]
    hits = query_daemon.query(index, "a red circle", mode="vector", environ=environ)
    assert hits[0]["text"] == "a red circle"
    pid = ping(environ)
    query_daemon.query(index, "a blue square", environ=environ)
    assert ping(environ) == pid  # one process served them all


def test_errors_come_back_as_the_in_process_path_raises_them(index, environ, tmp_path):
    engine = QueryEngine(Settings())
    for folder, mode, k in ((tmp_path / "nothing", "hybrid", 3), (index, "text", 0), (index, "sideways", 3)):
        with pytest.raises(QueryError) as ours:
            query_daemon.query(folder, "a red circle", mode=mode, k=k, environ=environ)
        with pytest.raises(QueryError) as theirs:
            engine.search(folder, "a red circle", mode=mode, k=k)  # type: ignore[arg-type]
        assert (ours.value.kind, ours.value.message) == (theirs.value.kind, theirs.value.message)


def test_new_rows_are_found_and_retired_rows_never_returned(index, environ, tower):
    first = query_daemon.query(index, "violet hexagon", mode="text", environ=environ)
    assert first == []
    add_captions(index, tower, ["a violet hexagon"])  # the index job adds a file
    hits = query_daemon.query(index, "violet hexagon", mode="text", environ=environ)
    assert hits[0]["text"] == "a violet hexagon"
    remove_captions(index, tower, [c for c in CAPTIONS if c != "a red circle"] + ["a violet hexagon"])
    engine = QueryEngine(Settings())
    for mode in ("hybrid", "vector", "text"):
        answer = query_daemon.query(index, "a red circle", mode=mode, k=20, environ=environ)
        hits = [hit["path"] for hit in answer]
        assert "/shapes/a-red-circle.pdf" not in hits, mode
        assert hits == [hit.path for hit in engine.search(index, "a red circle", mode=mode, k=20)], mode


def test_the_process_exits_after_its_idle_timeout(index, environ):
    environ = {**environ, "SENSORIUM_INDEX__SEARCH_DAEMON_IDLE_SECONDS": "1"}
    query_daemon.query(index, "a red circle", mode="text", environ=environ)
    path, pid = query_daemon.socket_path(environ), ping(environ)
    deadline = time.monotonic() + 15
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert gone(pid), "the query process is still running"
    assert not path.exists(), "its socket was left behind"
    with pytest.raises(DaemonUnavailable):
        query_daemon.query(index, "a red circle", start=False, environ=environ)
    # The next command starts a new one.
    hits = query_daemon.query(index, "a red circle", mode="text", environ=environ)
    assert hits[0]["text"] == "a red circle"
    assert ping(environ) != pid


def test_another_configuration_gets_its_own_process(environ, tmp_path, monkeypatch):
    other = {**environ, "SENSORIUM_INDEX__SEARCH_NPROBES": "7"}
    assert query_daemon.socket_path(other) != query_daemon.socket_path(environ)
    # The same settings written as a relative path from another folder reach the same one.
    monkeypatch.chdir(Path(environ["SENSORIUM_MODEL_DIR"]).parent)
    relative = {**environ, "SENSORIUM_MODEL_DIR": Path(environ["SENSORIUM_MODEL_DIR"]).name}
    assert query_daemon.socket_path(relative) == query_daemon.socket_path(environ)


def test_a_runtime_directory_others_can_enter_is_refused(tmp_path, index, environ):
    shared = tmp_path / "shared-run"
    (shared / "sensorium").mkdir(parents=True)
    (shared / "sensorium").chmod(0o755)
    environ = {**environ, "XDG_RUNTIME_DIR": str(shared)}
    with pytest.raises(DaemonUnavailable, match=r"not a private directory .* drwxr-xr-x"):
        query_daemon.query(index, "a red circle", environ=environ)


def test_bad_requests_get_a_reason(index, tmp_path):
    server = QueryServer(QueryEngine(Settings()), tmp_path / "x.sock", 1)
    assert server.handle(b"not json")["kind"] == "protocol"
    assert server.handle(b'{"protocol": 99, "op": "ping"}')["kind"] == "protocol"
    assert server.handle(b'{"protocol": 1, "op": "explode"}')["kind"] == "protocol"
    assert server.handle(b'{"protocol": 1, "op": "search", "index": "/x"}') == {
        "ok": False, "kind": "protocol", "message": "the request has no 'query'"}
    assert server.handle(b'{"protocol": 1, "op": "ping"}')["ok"] is True


AS_NOBODY = """
import logging, os, sys
from pathlib import Path
from sensorium.index import query_daemon, query
from sensorium.settings import Settings
server = query_daemon.QueryServer(query.QueryEngine(Settings()), Path(sys.argv[2]), idle_seconds=30)
# Everything is imported while root; then the process becomes nobody (the interpreter itself may
# live where nobody cannot read).
os.setgroups([])
os.setgid(65534)
os.setuid(65534)
if sys.argv[1] == "serve":
    server.serve()
else:
    print(query_daemon.call(Path(sys.argv[2]), {"protocol": 1, "op": "ping"})["pid"])
"""


@pytest.mark.skipif(os.getuid() != 0, reason="[allowed] running the query process as another user needs root")
def test_the_process_refuses_a_peer_of_another_user():
    nobody = 65534
    # Not under tmp_path, whose parents only root may enter.
    run = Path(tempfile.mkdtemp(prefix="sensorium-test-nobody-"))
    os.chown(run, nobody, nobody)
    path = run / "query-test.sock"
    daemon = subprocess.Popen([sys.executable, "-c", AS_NOBODY, "serve", str(path)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not path.exists() and daemon.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert path.exists(), daemon.stderr.read().decode() if daemon.poll() is not None else "no socket"
        # Root passes the directory's permissions; the process still checks who connects.
        reply = query_daemon.call(path, {"protocol": 1, "op": "ping"})
        assert reply == {"ok": False, "kind": "denied",
                         "message": f"this query process serves uid {nobody} only"}
        # The same request from its own user is answered.
        client = subprocess.run([sys.executable, "-c", AS_NOBODY, "ping", str(path)],
                                capture_output=True, text=True, timeout=60, check=False)
        assert client.stdout.strip() == str(daemon.pid), client.stderr
    finally:
        daemon.terminate()
        daemon.wait(30)
        shutil.rmtree(run, ignore_errors=True)
