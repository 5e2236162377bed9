"""The index job's walk stays inside its roots and reads regular files only (docs/security.md):
a FIFO, a link to /dev/zero or to a file outside the roots, and the index folder itself are
never read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sensorium.exits import Exit
from sensorium.index.inputs import JobError, list_inputs
from sensorium.index.sniff import NotRegularFile, hash_and_sniff, open_regular

pytestmark = pytest.mark.timeout(30)  # a walk that blocks on a FIFO fails here instead of hanging


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    (root / "deep").mkdir(parents=True)
    (root / "a.txt").write_text("a")
    (root / "deep" / "b.txt").write_text("b")
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("not yours")
    os.mkfifo(root / "pipe")
    (root / "zero").symlink_to("/dev/zero")
    (root / "secret-link.txt").symlink_to(secret)
    (root / "outside-dir").symlink_to(secret.parent, target_is_directory=True)
    return root


def test_the_walk_lists_regular_files_only_and_never_follows_a_link(tree: Path) -> None:
    found = [Path(p).relative_to(tree).as_posix() for p in list_inputs([tree], None)]
    assert found == ["a.txt", "deep/b.txt"]


def test_the_index_folder_is_not_walked_even_as_an_input(tree: Path) -> None:
    out = tree / "deep"
    assert [Path(p).name for p in list_inputs([tree], None, exclude=out)] == ["a.txt"]
    assert list_inputs([out], None, exclude=out) == []


def test_a_named_special_file_is_a_configuration_error(tree: Path) -> None:
    with pytest.raises(JobError) as error:
        list_inputs([tree / "pipe"], None)
    assert error.value.code == Exit.CONFIG and "regular files only" in str(error.value)


def test_a_file_that_became_a_link_or_a_fifo_is_never_read(tree: Path) -> None:
    # The FIFO has no writer: opening it the usual way would block until the test times out.
    for name in ("zero", "secret-link.txt", "pipe"):
        with pytest.raises(NotRegularFile):
            hash_and_sniff(tree / name)
    descriptor = open_regular(tree / "a.txt")
    os.close(descriptor)
