"""What the index job reads: the files under its inputs, and the shard it owns."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from sensorium.exits import Exit
from sensorium.index.layout import Shard
from sensorium.settings import Settings

log = logging.getLogger("sensorium.index")


class JobError(Exception):
    """The job cannot run or go on; `code` is its exit status (`sensorium.exits.Exit`)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def list_inputs(paths: Sequence[Path], manifest: Path | None, exclude: Path | None = None) -> list[str]:
    """Every regular file under `paths` and those `manifest` lists (one path per line; blank
    lines and lines starting with # are ignored), sorted, each once.

    The walk never leaves its roots: links (to files or folders) and special files (FIFOs,
    sockets, devices) under a root are passed over, so a link to /dev/zero or to a file outside
    the roots is never read, and a FIFO never blocks the job. A path named on the command line
    or in the manifest is the user's own choice and is followed once, but must be a regular file
    or a folder. `exclude` (the output) is not walked, nor indexed when it is one of the roots.
    A path that does not exist is a configuration error: a typo must not look like an empty
    folder (and would retire that folder's rows)."""
    wanted = list(paths)
    if manifest is not None:
        try:
            lines = manifest.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise JobError(f"cannot read the manifest {manifest}: {exc.strerror}", Exit.CONFIG) from None
        wanted += [Path(line.strip()) for line in lines if line.strip() and not line.lstrip().startswith("#")]
    skip = os.path.realpath(exclude) if exclude is not None else None
    found: set[str] = set()
    passed_over = 0
    for path in wanted:
        try:
            info = os.stat(path)
        except OSError:
            raise JobError(f"{path}: no such file or folder (check the path; nothing was indexed)",
                           Exit.CONFIG) from None
        if stat.S_ISDIR(info.st_mode):
            if os.path.realpath(path) == skip:
                log.warning("the index folder is one of the inputs: not walked", extra={"path": str(path)})
                continue
            passed_over += _walk(str(path), skip, found)
        elif stat.S_ISREG(info.st_mode):
            found.add(str(path))
        else:
            raise JobError(f"{path}: not a regular file or folder (a FIFO, socket or device); "
                           "Sensorium indexes regular files only", Exit.CONFIG)
    if passed_over:
        log.info("links and special files passed over (the walk indexes regular files only and "
                 "never follows a link)", extra={"count": passed_over})
    return sorted(found)


def _walk(root: str, skip: str | None, found: set[str]) -> int:
    """Add the regular files under `root` to `found`, without following links; the count of
    links and special files passed over."""
    passed_over = 0
    folders = [root]
    while folders:
        folder = folders.pop()
        try:
            with os.scandir(folder) as listing:
                entries = list(listing)
        except OSError as exc:
            log.warning("a folder cannot be listed; its files are not indexed",
                        extra={"path": folder, "why": exc.strerror})
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if skip is None or os.path.realpath(entry.path) != skip:
                    folders.append(entry.path)
            elif entry.is_file(follow_symlinks=False):
                found.add(entry.path)
            else:
                passed_over += 1
    return passed_over


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
