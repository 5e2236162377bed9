"""The supply chain: every package from one index (PyPI) with the sha256 of its files, installed
with --require-hashes; locks regenerated whenever the dependencies change; base images by digest;
model weights compared with their pins."""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
LOCKS = [ROOT / "requirements.lock", *sorted((DEPLOY / "locks").glob("*.txt"))]
PYPI = "--index-url https://pypi.org/simple"


def _pins(lock: Path) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of every requirement in `lock`."""
    pins: dict[str, tuple[str, list[str]]] = {}
    entries = re.split(r"\n(?=[A-Za-z0-9])", lock.read_text())
    for entry in entries:
        match = re.match(r"([A-Za-z0-9_.\-]+)==(\S+)", entry)
        if match:
            hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})", entry)
            pins[canonicalize_name(match.group(1))] = (match.group(2), hashes)
    return pins


def _dependency_digest() -> str:
    """What scripts/lock writes at the top of each lock (the same computation)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    tables = {"dependencies": project["dependencies"], "optional": project["optional-dependencies"]}
    return hashlib.sha256(json.dumps(tables, sort_keys=True).encode()).hexdigest()


def test_the_locks_exist_for_setup_and_every_image():
    names = {lock.name for lock in LOCKS}
    assert names == {"requirements.lock", "pdf.txt", "all.txt", "gpu.txt", "gpu-all.txt"}


@pytest.mark.parametrize("lock", LOCKS, ids=lambda p: p.name)
def test_every_package_comes_from_pypi_alone_with_its_hashes(lock):
    text = lock.read_text()
    options = [line for line in text.splitlines() if line.startswith("-")]
    assert options == [PYPI], "one index, no --extra-index-url or --find-links fallback"
    pins = _pins(lock)
    assert pins
    for name, (version, hashes) in pins.items():
        assert hashes, f"{lock.name}: {name}=={version} has no sha256"
    assert "git+" not in text and "file:" not in text and " @ " not in text


@pytest.mark.parametrize("lock", LOCKS, ids=lambda p: p.name)
def test_the_locks_follow_pyproject(lock):
    """Change a dependency in pyproject.toml and this fails until `scripts/lock` ran."""
    first = lock.read_text().splitlines()[0]
    assert first == f"# dependencies sha256: {_dependency_digest()}", (
        f"{lock.relative_to(ROOT)} is older than pyproject.toml's dependencies: run scripts/lock")


def test_the_setup_lock_satisfies_every_dependency_of_the_setup_extras():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = _pins(ROOT / "requirements.lock")
    wanted = [*project["project"]["dependencies"], *project["build-system"]["requires"]]
    for extra in ("pdf", "transcription", "embedding", "tracing", "index", "packaged-models", "dev"):
        wanted += project["project"]["optional-dependencies"][extra]
    for line in wanted:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        if name == "sensorium":  # an extra that names another of ours: that extra's packages are wanted too
            for extra in requirement.extras:
                wanted += project["project"]["optional-dependencies"][extra]
            continue
        assert name in pins, f"{name} is not in requirements.lock: run scripts/lock"
        assert requirement.specifier.contains(pins[name][0], prereleases=True), (name, pins[name][0])


def test_setup_installs_the_lock_with_hashes_and_nothing_unchecked():
    setup = (ROOT / "scripts" / "setup").read_text()
    assert "--require-hashes --no-deps -r requirements.lock" in setup
    assert "--no-build-isolation -e ." in setup, "the build backend comes from the lock"
    for path in [ROOT / "scripts" / "setup", ROOT / "scripts" / "lock", *DEPLOY.glob("Containerfile*")]:
        text = path.read_text()
        assert "--extra-index-url" not in text and "--find-links" not in text, path.name


@pytest.mark.parametrize("name", ["Containerfile", "Containerfile.gpu", "Containerfile.models"])
def test_base_images_are_pulled_by_an_enforced_digest(name):
    text = (DEPLOY / name).read_text()
    bases = re.findall(r"^FROM (\S+)", text, re.M)
    for base in bases:
        if base == "scratch":
            continue
        match = re.fullmatch(r"\$\{(\w+)\}@\$\{(\w+_DIGEST)\}", base)
        assert match, f"{name}: FROM {base} is not pinned by a digest argument"
        # No default: a build without the digest fails instead of pulling a movable tag.
        assert re.search(rf"^ARG {match.group(2)}$", text, re.M), f"{name}: {match.group(2)} has a default"


@pytest.mark.parametrize("name", ["Containerfile", "Containerfile.gpu"])
def test_images_install_an_existing_lock_and_the_context_carries_it(name):
    text = (DEPLOY / name).read_text()
    for lock in set(re.findall(r"^ARG LOCK=(\S+)$", text, re.M)):
        assert (DEPLOY / "locks" / f"{lock}.txt").is_file()
    assert "COPY deploy/locks/ deploy/locks/" in text
    for ignore in (".containerignore", ".dockerignore"):
        assert "!deploy/locks/" in (ROOT / ignore).read_text().splitlines()


# --- model weights ------------------------------------------------------------------------------

def test_the_packaged_whisper_pins_are_the_sha256_the_assembly_verifies():
    from sensorium.pins import PINS
    from sensorium.transcription.models import PACKAGED

    for name, model in PACKAGED.items():
        pin = PINS[("transcription", f"packaged:{name}")]
        assert pin.sha256 == model.model_bin_sha256
        assert pin.revision is not None
        assert all(f"{d}=={v}" in pin.revision.split() for d, v in model.distributions.items())


def test_every_default_model_has_a_pin(monkeypatch):
    import yaml

    from sensorium.pins import PINS
    from sensorium.settings import Settings

    named = {("transcription", Settings().transcription.model),
             ("transcription", Settings(profile="dev").transcription.model),
             ("embedding", f"{Settings().embedding.model}/{Settings().embedding.pretrained}")}
    for kustomization in (DEPLOY / "k8s").rglob("kustomization.yaml"):
        for generator in yaml.safe_load(kustomization.read_text()).get("configMapGenerator", []):
            env = dict(item.split("=", 1) for item in generator.get("literals", []))
            if "SENSORIUM_TRANSCRIPTION__MODEL" in env:
                named.add(("transcription", env["SENSORIUM_TRANSCRIPTION__MODEL"]))
            if "SENSORIUM_EMBEDDING__MODEL" in env:
                named.add(("embedding", f"{env['SENSORIUM_EMBEDDING__MODEL']}/"
                                        f"{env['SENSORIUM_EMBEDDING__PRETRAINED']}"))
    assert named <= set(PINS), f"no pin for {sorted(named - set(PINS))}"


def test_weights_other_than_the_pin_are_refused_unless_named(caplog):
    from sensorium import pins
    from sensorium.errors import ModelError

    pinned = pins.PINS[("transcription", "packaged:tiny.en")].sha256
    assert pinned is not None
    assert pins.check("transcription", "packaged:tiny.en", pinned, "", "S") == "sha256 as pinned"
    other = "0" * 64
    with pytest.raises(ModelError) as refused:
        pins.check("transcription", "packaged:tiny.en", other, "", "SENSORIUM_X")
    assert f"SENSORIUM_X={other}" in str(refused.value) and pinned in str(refused.value)
    assert pins.check("transcription", "packaged:tiny.en", other, other, "S") == "sha256 as S"
    with pytest.raises(ModelError):  # named weights are compared too, pinned model or not
        pins.check("transcription", "/models/mine", other, pinned, "S")
    assert pins.check("transcription", "/models/mine", other, "", "S").startswith("no pin")
    caplog.set_level("WARNING")
    assert pins.check("embedding", "ViT-B-32/laion2b_s34b_b79k", other, "", "S") == "not pinned"
    assert "weights not pinned" in caplog.text
