"""The index directory: its schemas, shard names, manifests and crash-safe file writes.

```
DIR/
  shard-0-of-2/
    manifest.json          embedding space, options, schema version, shard
    rows/00000001.parquet  row parts (the source of truth), immutable once visible
    passages/00000002.parquet  passage parts: the text of pages, transcript stretches, ...
    ledger/00000003.parquet  ledger segments: files-table entries, in commit order
    files.parquet          the files table, folded from the ledger at the end of a run
    lock                   held (flock) by the one writer of this shard
  shard-1-of-2/ ...
  .search/                 the LanceDB store, rebuilt from the parts at will
```

Every file a reader may see is written under a hidden temporary name in its own folder,
flushed to disk (fsync), and renamed into place, then the folder is synced too: a reader sees
the whole file or nothing, whenever the writer is killed. docs/index.md describes the columns.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import hashlib
import json
import os
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import numpy.typing as npt
import pyarrow as pa

SCHEMA_VERSION = 2
"""Version of the row, passage and files-table schemas; readers refuse an index of another
version (1: up to the one-seam redesign; 2: passages, the units full-text search ranks, and rows'
`passage`; rows carry the file's modification time and the locator and metadata columns every
file kind fills in: section, cells, title, author, taken_at)."""

OptionValue = str | int | float | bool | None
BBoxTuple = tuple[float, float, float, float]
"""(x0, y0, x1, y1) in PDF points, origin top-left of the displayed page."""


class IndexStoreError(Exception):
    """Base of the index's errors; the message says what is wrong and what to do."""


class IndexMismatchError(IndexStoreError):
    """The index directory holds shards that disagree, or not the space a writer expects."""


class IndexBusyError(IndexStoreError):
    """Another process is writing the same shard."""


class IndexLayoutError(IndexStoreError):
    """The directory is not a Sensorium index, or is of an unknown schema version."""


class FileStatus(enum.StrEnum):
    """The outcome for one input path (the files table's `status`)."""

    INDEXED = "indexed"
    """Its rows are in the index."""
    DUPLICATE = "duplicate"
    """Same content as `duplicate_of`, whose rows stand for both."""
    SKIPPED = "skipped"
    """Not a kind the job indexes (reason UNSUPPORTED_TYPE or INPUT_EMPTY)."""
    ERROR = "error"
    """Failed; `retryable` says whether the next run tries again."""
    REMOVED = "removed"
    """Ledger only: the path was gone at a later run; never in the files table."""


@dataclass(frozen=True)
class Row:
    """One embedded piece of a file; the writer adds unit, ordinal, hash, path and space."""

    kind: str
    """A row kind of the kind table (`sensorium.index.kinds`), e.g. "pdf_text"."""
    vector: npt.ArrayLike
    text: str | None = None
    page: int | None = None
    """1-based page number (PDF rows)."""
    bbox: BBoxTuple | None = None
    """(x0, y0, x1, y1) in PDF points (PDF rows)."""
    start_seconds: float | None = None
    end_seconds: float | None = None
    section: str | None = None
    """Where in the file beyond page and time, as a person follows it: a document's heading
    path ("Results > Costs"), a slide's title, a spreadsheet's sheet name, a mail's subject."""
    cells: str | None = None
    """A spreadsheet row's cell range ("A12:F12")."""
    title: str | None = None
    """The file's own title (document metadata), where the format has one."""
    author: str | None = None
    """The file's author (document metadata), where the format has one."""
    taken_at: datetime | None = None
    """When a photo or video was taken (EXIF, container metadata), timezone-aware."""
    passage: int | None = None
    """Ordinal of the passage (from `IndexWriter.add_passages`) the row's text or image belongs to."""


@dataclass(frozen=True)
class Passage:
    """The whole text of one unit a person thinks in (a page, a slide, a section, a stretch of a
    transcript): what full-text search ranks, while rows stay the vector side's unit."""

    kind: str
    """The row kind of the rows made from it (pdf_text for a page, audio for a transcript)."""
    text: str
    page: int | None = None
    """1-based page or slide number."""
    start_seconds: float | None = None
    end_seconds: float | None = None
    section: str | None = None
    """Where in the file beyond page and time, as `Row.section` (heading path, slide title, sheet)."""


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count` (0-based, as Kubernetes' JOB_COMPLETION_INDEX counts)."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index}/{self.count}: need 0 <= I < N")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """ "I/N" (e.g. "0/2") as a Shard; ValueError with a usable message otherwise."""
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not match:
            raise ValueError(f"shard {text!r}: write it as I/N, e.g. 0/2 (I from 0 to N-1)")
        return cls(int(match.group(1)), int(match.group(2)))

    @property
    def name(self) -> str:
        """The shard's folder name, e.g. "shard-0-of-2"."""
        return f"shard-{self.index}-of-{self.count}"

    def owns(self, path: str) -> bool:
        """Whether `path` belongs to this shard: a stable hash of the path string, mod N."""
        digest = hashlib.sha256(path.encode("utf-8", "surrogateescape")).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


_SHARD_DIR = re.compile(r"shard-(\d+)-of-(\d+)")


def shard_of_dir(name: str) -> Shard | None:
    """The shard a folder name denotes, or None for another name."""
    match = _SHARD_DIR.fullmatch(name)
    return Shard(int(match.group(1)), int(match.group(2))) if match else None


@dataclass(frozen=True)
class EmbeddingSpace:
    """The vector space of every row (see `sensorium.type.v1.EmbeddingSpace`)."""

    model: str
    pretrained: str
    weights_sha256: str
    dimension: int
    normalized: bool = True

    @property
    def id(self) -> str:
        """A short fingerprint of all five fields: the rows' `space` column."""
        return _digest(dataclasses.asdict(self))[:16]

    @classmethod
    def of(cls, space: ModelSpace) -> EmbeddingSpace:
        """The space of a loaded model (`sensorium.embedding.api.Space`), normalized vectors."""
        return cls(space.model, space.pretrained, space.weights_sha256, space.dimension)


class ModelSpace(Protocol):
    """What a model says of its space (e.g. `sensorium.embedding.api.Space`)."""

    @property
    def model(self) -> str: ...
    @property
    def pretrained(self) -> str: ...
    @property
    def weights_sha256(self) -> str: ...
    @property
    def dimension(self) -> int: ...


def check_space(manifest: Manifest, space: ModelSpace) -> None:
    """Refuse a model other than the one the index was built with (its vectors would be
    compared with vectors of another space): `IndexMismatchError` saying what to set."""
    built = manifest.space
    if (space.model, space.pretrained, space.weights_sha256) != (built.model, built.pretrained,
                                                                  built.weights_sha256):
        raise IndexMismatchError(
            f"the index was built with {built.model} ({built.pretrained or 'random'}, weights "
            f"{built.weights_sha256[:12]}) but the model here is {space.model} "
            f"({space.pretrained or 'random'}, weights {space.weights_sha256[:12]}): set "
            "SENSORIUM_EMBEDDING__MODEL and __PRETRAINED as when the index was built")


@dataclass(frozen=True)
class Manifest:
    """What every row of an index depends on: its space, the options that shape rows, the
    schema version. Two shards agree when their manifests' fingerprints are equal."""

    space: EmbeddingSpace
    options: Mapping[str, OptionValue] = field(default_factory=dict)
    """Everything else that changes rows, e.g. chunking parameters, the minimum image side,
    the transcription model, OCR; names and values chosen by the job."""
    schema_version: int = SCHEMA_VERSION

    @property
    def fingerprint(self) -> str:
        return _digest(self._identity())

    def _identity(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "space": dataclasses.asdict(self.space),
            "options": dict(sorted(self.options.items())),
        }

    def to_json(self, shard: Shard, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return {
            **self._identity(),
            "space_id": self.space.id,
            "fingerprint": self.fingerprint,
            "shard": {"index": shard.index, "count": shard.count},
            **(extra or {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Manifest:
        return cls(
            space=EmbeddingSpace(**data["space"]),
            options=dict(data.get("options", {})),
            schema_version=int(data["schema_version"]),
        )

    def describe_difference(self, other: Manifest, names: tuple[str, str] = ("this", "other")) -> str:
        """The fields where `other` differs, as a person reads them: "model 'A' (this) vs 'B'
        (other)"."""
        mine, theirs = self._identity(), other._identity()
        pairs = [("schema version", mine["schema_version"], theirs["schema_version"])]
        pairs += [(key, value, theirs["space"][key]) for key, value in mine["space"].items()]
        pairs += [
            (f"option {key}", mine["options"].get(key), theirs["options"].get(key))
            for key in sorted(set(mine["options"]) | set(theirs["options"]))
        ]
        return (
            ", ".join(f"{label} {a!r} ({names[0]}) vs {b!r} ({names[1]})" for label, a, b in pairs if a != b)
            or "nothing"
        )


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def row_schema(dimension: int) -> pa.Schema:
    """Columns of the row parts (docs/index.md)."""
    return pa.schema(
        [
            pa.field("unit", pa.string(), nullable=False),
            pa.field("ordinal", pa.int32(), nullable=False),
            pa.field("content_sha256", pa.string(), nullable=False),
            pa.field("path", pa.string(), nullable=False),
            pa.field("kind", pa.string(), nullable=False),
            pa.field("page", pa.int32()),
            pa.field("bbox", BBOX_TYPE),
            pa.field("start_seconds", pa.float64()),
            pa.field("end_seconds", pa.float64()),
            pa.field("text", pa.string()),
            pa.field("section", pa.string()),
            pa.field("cells", pa.string()),
            pa.field("title", pa.string()),
            pa.field("author", pa.string()),
            pa.field("taken_at", pa.timestamp("us", tz="UTC")),
            pa.field("mtime", pa.timestamp("us", tz="UTC"), nullable=False),
            pa.field(
                "vector", pa.list_(pa.field("item", pa.float32(), nullable=False), dimension), nullable=False
            ),
            pa.field("space", pa.string(), nullable=False),
            pa.field("passage", pa.int32()),
        ]
    )


PASSAGE_SCHEMA = pa.schema(
    [
        pa.field("unit", pa.string(), nullable=False),
        pa.field("ordinal", pa.int32(), nullable=False),
        pa.field("content_sha256", pa.string(), nullable=False),
        pa.field("path", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("page", pa.int32()),
        pa.field("start_seconds", pa.float64()),
        pa.field("end_seconds", pa.float64()),
        pa.field("section", pa.string()),
        pa.field("text", pa.string(), nullable=False),
    ]
)
"""Columns of the passage parts (docs/index.md): the text of one unit a person thinks in (a
page, a stretch of a transcript), whole, as full-text search ranks it. `ordinal` numbers a
file's passages from 0; rows name theirs in `passage`."""

BBOX_TYPE = pa.struct([(name, pa.float32()) for name in ("x0", "y0", "x1", "y1")])

FILES_SCHEMA = pa.schema(
    [
        pa.field("path", pa.string(), nullable=False),
        pa.field("content_sha256", pa.string()),
        pa.field("size", pa.int64(), nullable=False),
        pa.field("mtime", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("kind", pa.string()),
        pa.field("status", pa.string(), nullable=False),
        pa.field("reason", pa.string()),
        pa.field("message", pa.string()),
        pa.field("retryable", pa.bool_(), nullable=False),
        pa.field("unit", pa.string()),
        pa.field("rows", pa.int64(), nullable=False),
        pa.field("parts", pa.list_(pa.string()), nullable=False),
        pa.field("duplicate_of", pa.string()),
        pa.field("passages", pa.int64(), nullable=False),
        pa.field("passage_parts", pa.list_(pa.string()), nullable=False),
    ]
)
"""Columns of the files table and of the ledger segments (docs/index.md)."""

LEDGER_SEQ_KEY = b"sensorium.ledger_seq"
"""files.parquet's schema metadata: the last ledger segment folded into it."""


# --- crash-safe writes -------------------------------------------------------------------


def write_atomic(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Create `path` whole or not at all: write to a hidden temporary name in the same folder,
    fsync, rename over `path`, fsync the folder (so the rename itself survives a power cut)."""
    temporary = path.with_name(f".tmp-{path.name}-{uuid.uuid4().hex[:8]}")
    try:
        with open(temporary, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def remove_temporaries(folder: Path) -> None:
    """Delete what a killed writer left under temporary names (only its own shard's folder)."""
    if folder.is_dir():
        for leftover in folder.glob(".tmp-*"):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def read_manifest(shard_dir: Path) -> Manifest:
    path = shard_dir / "manifest.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as error:
        raise IndexLayoutError(
            f"{path} cannot be read ({error}); remove the shard's folder and rerun it"
        ) from error
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise IndexLayoutError(
            f"{path} is schema version {version}; this Sensorium reads version {SCHEMA_VERSION}. "
            "Rebuild the index in a new directory"
        )
    return Manifest.from_json(data)


def write_manifest(shard_dir: Path, manifest: Manifest, shard: Shard, extra: Mapping[str, Any]) -> None:
    text = json.dumps(manifest.to_json(shard, extra), indent=2, sort_keys=True) + "\n"
    write_atomic(shard_dir / "manifest.json", lambda handle: handle.write(text.encode()))


def shard_dirs(directory: Path) -> dict[Shard, Path]:
    """The shard folders of an index directory that hold a manifest, by shard."""
    found = {}
    if directory.is_dir():
        for child in sorted(directory.iterdir()):
            shard = shard_of_dir(child.name)
            if shard is not None and (child / "manifest.json").is_file():
                found[shard] = child
    return found


def agreed_manifest(
    directory: Path, expected: Manifest | None = None, shard_count: int | None = None
) -> Manifest | None:
    """The manifest every shard of `directory` shares (None for an index with no shards yet).

    Raises IndexMismatchError naming the shards and fields that differ, when shards disagree,
    when they were written with different shard counts (or another count than `shard_count`),
    or when they differ from `expected`.
    """
    manifests = {shard: read_manifest(path) for shard, path in shard_dirs(directory).items()}
    if not manifests:
        return None
    counts = sorted({shard.count for shard in manifests} | ({shard_count} if shard_count else set()))
    if len(counts) > 1:
        names = ", ".join(shard.name for shard in manifests)
        wanted = f" and this job writes 1 of {shard_count}" if shard_count else ""
        raise IndexMismatchError(
            f"{directory} holds shards of different shard counts ({names}{wanted}); an index is "
            "written with one count N. Use the same N as before, or index into a new directory"
        )
    reference_shard, reference = next(iter(manifests.items()))
    for shard, manifest in manifests.items():
        if manifest.fingerprint != reference.fingerprint:
            raise IndexMismatchError(
                f"{directory}: {shard.name} and {reference_shard.name} were written with different "
                f"settings ({reference.describe_difference(manifest, (reference_shard.name, shard.name))}); "
                "an index holds one embedding "
                "space and one set of options. Index into a new directory, or remove the index"
            )
    if expected is not None and expected.fingerprint != reference.fingerprint:
        raise IndexMismatchError(
            f"{directory} was indexed with different settings "
            f"({reference.describe_difference(expected, ('index', 'now'))}); vectors of two models or "
            "chunkings must never be mixed. Index into a new directory, or remove this one to rebuild it"
        )
    return reference


def ledger_seq(name: str) -> int | None:
    """The sequence number in a part or segment file name ("00000012.parquet" -> 12)."""
    match = re.fullmatch(r"(\d{8})\.parquet", name)
    return int(match.group(1)) if match else None


def seq_name(seq: int) -> str:
    return f"{seq:08d}.parquet"
