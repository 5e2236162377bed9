"""The gRPC SearchService as `sensorium serve` hosts it over an index folder: it answers what
`sensorium search` prints, `sensorium search --server` uses it, it needs the `search` scope,
it never writes the index, and it sees the index job's new and retired rows without a restart.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import testkit
from query_kit import CAPTIONS, add_captions, remove_captions, shapes_model_dir, shapes_tower
from sensorium.client import Client
from sensorium.errors import Reason
from sensorium.index.query import SearchRequest
from sensorium.remote import EnginesUnavailable, RemoteError
from sensorium.search.remote import RemoteSearch

SEARCH_TOKEN = "search-token-0123456789abcdef"
PDF_TOKEN = "pdf-token-0123456789abcdef01"


@pytest.fixture(scope="module")
def tower():
    return shapes_tower()


@pytest.fixture(scope="module")
def index(tmp_path_factory, tower) -> Path:
    out = tmp_path_factory.mktemp("search-service") / "index"
    add_captions(out, tower, CAPTIONS)
    return out


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    model_dir, model = shapes_model_dir()
    run = tmp_path_factory.mktemp("run")
    run.chmod(0o700)
    env = testkit.cli_env(SENSORIUM_EMBEDDING__MODEL=model, SENSORIUM_EMBEDDING__PRETRAINED="",
                          SENSORIUM_MODEL_DIR=str(model_dir), SENSORIUM_DEVICE="cpu")
    return {**env, "XDG_RUNTIME_DIR": str(run)}


@pytest.fixture(scope="module")
def server(env, index, tmp_path_factory) -> Iterator[testkit.ServeProcess]:
    folder = tmp_path_factory.mktemp("tokens")
    tokens = folder / "tokens"
    tokens.write_text(f"{SEARCH_TOKEN} search\n{PDF_TOKEN} pdf\n")
    tokens.chmod(0o600)
    (folder / "search-token").write_text(SEARCH_TOKEN + "\n")
    (folder / "pdf-token").write_text(PDF_TOKEN + "\n")
    serve_env = {**env, "SENSORIUM_SERVICES": "search", "SENSORIUM_SEARCH__INDEX_DIR": str(index),
                 "SENSORIUM_AUTH__TOKENS_FILE": str(tokens)}
    with testkit.serve(serve_env) as serving:
        assert serving.process.stderr is not None
        # Drain the server's log: a full pipe would block it.
        threading.Thread(target=lambda: serving.process.stderr.read(), daemon=True).start()
        serving.token_dir = folder  # type: ignore[attr-defined]
        yield serving


def client_flags(server: Any, token: str = "search") -> list[str]:
    return ["--server", server.target, "--token-file", str(server.token_dir / f"{token}-token"), "--insecure"]


COMMANDS = [
    ["a red circle"],
    ["a red circle", "--mode", "vector", "--json"],
    ["circle", "--mode", "text", "--json"],
    ["a blue square", "-k", "3", "--offset", "1", "--json"],
    ["a red circle", "--path", "*circle*", "--json"],
    ["a red circle", "--modified-after", "1970-01-01", "--modified-before", "2100-01-01", "--json"],
    ["a red circle", "--chunks", "--json", "-k", "4"],
    ["a green triangle", "--chunks", "-k", "3"],
    ["a green triangle", "--min-score", "0.02"],
]
_NUMBER = re.compile(r"[-+]?\d+\.\d+(?:[eE][-+]?\d+)?")


def same(expected: str, actual: str) -> bool:
    """Equal but for the last bits of scores (the server's tower is prepacked)."""
    if _NUMBER.sub("#", expected) != _NUMBER.sub("#", actual):
        return False
    pairs = zip(_NUMBER.findall(expected), _NUMBER.findall(actual), strict=True)
    return all(abs(float(a) - float(b)) <= 1e-4 for a, b in pairs)


def test_search_over_grpc_prints_what_the_cli_prints(env, index, server):
    for command in COMMANDS:
        local = testkit.run_cli("search", "--index", str(index), *command, "--no-daemon", env=env)
        remote = testkit.run_cli("search", *command, *client_flags(server), env=env)
        assert local.returncode == remote.returncode == 0, (local.stderr, remote.stderr)
        assert local.stdout.strip(), command
        assert same(local.stdout, remote.stdout), (command, local.stdout, remote.stdout)


def search(server: Any, request: SearchRequest, token: str = SEARCH_TOKEN) -> Any:
    async def ask() -> Any:
        async with Client(server.target, token=token, insecure=True, timeout=30) as client:
            return await RemoteSearch(client).search(request)

    return asyncio.run(ask())


def test_a_token_without_the_search_scope_is_refused(env, server):
    with pytest.raises(EnginesUnavailable, match=r"PERMISSION_DENIED.*may call pdf, not search"):
        search(server, SearchRequest(query="a red circle"), token=PDF_TOKEN)
    cli = testkit.run_cli("search", "a red circle", *client_flags(server, "pdf"), env=env)
    assert cli.returncode != 0 and "PERMISSION_DENIED" in cli.stderr
    assert "Traceback" not in cli.stderr
    assert search(server, SearchRequest(query="a red circle")).results


def test_bad_requests_get_a_reason(server):
    for request, reason in ((SearchRequest(query="   "), Reason.INPUT_EMPTY),
                            (SearchRequest(query="a", k=900, offset=200), Reason.INVALID_REQUEST),
                            (SearchRequest(query="a", kinds=("sideways",)), Reason.INVALID_REQUEST)):
        with pytest.raises(RemoteError) as refused:
            search(server, request)
        assert refused.value.reason == reason, refused.value


def snapshot(folder: Path) -> dict[str, tuple[int, int, str]]:
    return {str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns,
                                             hashlib.sha256(path.read_bytes()).hexdigest())
            for path in sorted(folder.rglob("*")) if path.is_file()}


def test_searching_never_writes_the_index(index, server):
    before = snapshot(index)
    for number in range(40):
        mode = ("hybrid", "vector", "text")[number % 3]
        caption = CAPTIONS[number % len(CAPTIONS)]
        assert search(server, SearchRequest(query=caption, mode=mode, chunks=number % 2 == 0))
    assert snapshot(index) == before


def test_a_running_service_sees_new_rows_and_never_retired_ones(index, server, tower):
    # Last in this module: it changes the index.
    assert not search(server, SearchRequest(query="violet hexagon", mode="text")).results
    add_captions(index, tower, ["a violet hexagon"])  # a rerun of the index job adds a file
    found = search(server, SearchRequest(query="violet hexagon", mode="text")).results
    assert [result.path for result in found][:1] == ["/shapes/a-violet-hexagon.pdf"]
    remove_captions(index, tower, [c for c in CAPTIONS if c != "a red circle"])  # and retires two
    for mode in ("hybrid", "vector", "text"):
        for chunks in (False, True):
            answer = search(server, SearchRequest(query="a red circle violet hexagon", mode=mode, k=50,
                                                  chunks=chunks))
            paths = {item["path"] for item in answer.items("a red circle")}
            assert paths, mode
            assert not paths & {"/shapes/a-red-circle.pdf", "/shapes/a-violet-hexagon.pdf"}, (mode, paths)
    assert json.dumps(answer.items("x"))  # the answer stays printable
    assert os.path.isdir(index)
