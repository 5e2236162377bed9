"""What the index job tells its user while it runs: a tally of what it did, a progress bar on a
terminal, a log line now and then in a pod's log, and the summary at the end."""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sensorium.index.layout import Shard

log = logging.getLogger("sensorium.index")


@dataclass
class Tally:
    """What the job did, for the progress line and the summary."""

    listed: int = 0
    todo: int = 0
    unchanged: int = 0
    removed: int = 0
    done: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    rows: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)

    def to_json(self, out: Path, shard: Shard, parts: int) -> dict[str, Any]:
        seconds = time.monotonic() - self.started
        total_rows = sum(self.rows.values())
        return {
            "index": str(out),
            "shard": str(shard),
            "files": {
                "listed": self.listed, "unchanged": self.unchanged, "removed": self.removed,
                "processed": self.done, "by_status": dict(self.statuses), "by_kind": dict(self.kinds),
            },
            "rows": {"total": total_rows, "by_kind": dict(self.rows)},
            "parts_written": parts,
            "errors": dict(self.errors),
            "seconds": round(seconds, 3),
            "files_per_second": round(self.done / seconds, 3) if seconds else 0.0,
            "rows_per_second": round(total_rows / seconds, 3) if seconds else 0.0,
        }


class Progress:
    """A progress bar (files, rate, ETA, errors) on a terminal; a log line every
    `every` seconds otherwise (a Kubernetes pod's log)."""

    def __init__(self, tally: Tally, *, bar: bool, every: float = 10.0) -> None:
        self.tally = tally
        self.every = every
        self._last = time.monotonic()
        self._bar: Any = None
        if bar:
            from tqdm import tqdm

            self._bar = tqdm(total=tally.todo, unit="file", dynamic_ncols=True, leave=True)

    def file_done(self) -> None:
        tally = self.tally
        if self._bar is not None:
            self._bar.set_postfix(rows=sum(tally.rows.values()), errors=sum(tally.errors.values()),
                                  refresh=False)
            self._bar.update(1)
            return
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            rate = tally.done / max(now - tally.started, 1e-9)
            left = (tally.todo - tally.done) / rate if rate else 0.0
            log.info("indexing", extra={
                "files_done": tally.done, "files_todo": tally.todo, "files_per_second": round(rate, 2),
                "eta_seconds": round(left), "rows": sum(tally.rows.values()),
                "errors": sum(tally.errors.values())})

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
