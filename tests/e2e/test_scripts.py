"""The README's commands themselves: scripts/test refuses to run without its network namespace
under CI (the namespace is the proof that no test reaches the network)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import testkit

NO_NAMESPACE = "cannot create a network namespace"


def scripts_test(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """scripts/test on a machine where `unshare -n` fails (a stand-in `unshare` first on PATH)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "unshare"
    fake.write_text("#!/bin/sh\necho 'unshare: unshare failed: Operation not permitted' >&2\nexit 1\n")
    fake.chmod(0o755)
    environment = {k: v for k, v in os.environ.items() if k not in ("CI", "REQUIRE_NETNS")}
    environment.update(PATH=f"{bin_dir}:{os.environ['PATH']}", **env)
    return subprocess.run([str(testkit.REPO / "scripts" / "test"), *args], capture_output=True,
                          text=True, env=environment, timeout=300, check=False)


@pytest.mark.parametrize("env", [{"CI": "true"}, {"CI": "1"}, {"REQUIRE_NETNS": "1"}])
def test_under_ci_scripts_test_fails_without_a_network_namespace(tmp_path, env):
    result = scripts_test(tmp_path, "--collect-only", "-q", "tests/unit/test_settings.py", **env)
    assert result.returncode == 1
    assert f"ERROR: {NO_NAMESPACE}" in result.stderr
    assert "tests collected" not in result.stdout  # pytest never ran


def test_elsewhere_it_warns_and_runs_with_the_network(tmp_path):
    result = scripts_test(tmp_path, "--collect-only", "-q", "tests/unit/test_settings.py", CI="false")
    assert result.returncode == 0, result.stderr
    assert f"WARNING: {NO_NAMESPACE}" in result.stderr
    assert "tests collected" in result.stdout
