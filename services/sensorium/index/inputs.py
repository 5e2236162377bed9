"""What the index job reads: the files under its inputs, and the shard it owns."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from sensorium.exits import Exit
from sensorium.index.layout import Shard
from sensorium.settings import Settings


class JobError(Exception):
    """The job cannot run or go on; `code` is its exit status (`sensorium.exits.Exit`)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def list_inputs(paths: Sequence[Path], manifest: Path | None, exclude: Path | None = None) -> list[str]:
    """Every file under `paths` and those `manifest` lists (one path per line; blank lines and
    lines starting with # are ignored), sorted, each once; `exclude` (the output) is not
    walked. A path that does not exist is a configuration error: a typo must not look like an
    empty folder (and would retire that folder's rows)."""
    wanted = list(paths)
    if manifest is not None:
        try:
            lines = manifest.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise JobError(f"cannot read the manifest {manifest}: {exc.strerror}", Exit.CONFIG) from None
        wanted += [Path(line.strip()) for line in lines if line.strip() and not line.lstrip().startswith("#")]
    skip = os.path.realpath(exclude) if exclude is not None else None
    found: set[str] = set()
    for path in wanted:
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if os.path.realpath(os.path.join(root, d)) != skip)
                found.update(os.path.join(root, name) for name in files)
        elif path.is_file():
            found.add(str(path))
        else:
            raise JobError(f"{path}: no such file or folder (check the path; nothing was indexed)",
                           Exit.CONFIG)
    return sorted(found)


def resolve_shard(flag: str | None, settings: Settings, environ: dict[str, str] | None = None) -> Shard:
    """`--shard I/N`; else JOB_COMPLETION_INDEX of SENSORIUM_INDEX__SHARD_COUNT (an Indexed
    Job); else the one shard."""
    environ = dict(os.environ) if environ is None else environ
    if flag:
        try:
            return Shard.parse(flag)
        except ValueError as exc:
            raise JobError(f"--shard {flag}: {exc}", Exit.USAGE) from None
    count = settings.index.shard_count
    index_text = environ.get("JOB_COMPLETION_INDEX")
    if index_text is None:
        if count > 1:
            raise JobError(
                f"SENSORIUM_INDEX__SHARD_COUNT is {count} but this is no Indexed Job "
                "(JOB_COMPLETION_INDEX is unset): pass --shard I/N", Exit.CONFIG)
        return Shard(0, 1)
    try:
        index = int(index_text)
        return Shard(index, count)
    except ValueError:
        raise JobError(
            f"JOB_COMPLETION_INDEX={index_text} is not a shard of SENSORIUM_INDEX__SHARD_COUNT="
            f"{count}: set the setting to the Job's completions", Exit.CONFIG) from None
