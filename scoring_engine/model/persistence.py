"""Model files: skops, loaded only with the allow-list of types written here.

A model file arrives from outside the engine. skops rebuilds objects from a description
instead of running pickle byte code, and refuses any type not trusted by the caller. The
trusted types are fixed in this module, never read from a bundle or manifest: a file that
names any other type is refused before anything in it is built.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import skops.io as sio

from scoring_engine.errors import ModelError
from scoring_engine.model.scorer import GroomingModel

MODEL_FILE = "model.skops"

# Types a Vigil model file may contain beyond skops' own safe defaults (built-ins,
# numpy arrays and scalars).
ALLOWED_TYPES: tuple[str, ...] = (
    "scoring_engine.model.scorer.GroomingModel",
    "scoring_engine.model.classifier.CalibratedLinearClassifier",
)


def save_model(model: GroomingModel, path: Path) -> None:
    sio.dump(model, path, compression=zipfile.ZIP_DEFLATED)


def load_model(path: Path) -> GroomingModel:
    """Load a model file, refusing any type outside :data:`ALLOWED_TYPES`."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ModelError(f"{path}: cannot read model file: {error.strerror}") from error
    try:
        untrusted = set(sio.get_untrusted_types(data=data))
    except Exception as error:
        raise ModelError(f"{path}: not a valid model file ({type(error).__name__})") from error
    refused = sorted(untrusted - set(ALLOWED_TYPES))
    if refused:
        raise ModelError(
            f"{path}: model file contains types this engine does not allow: " + ", ".join(refused)
        )
    try:
        model = sio.loads(data, trusted=list(ALLOWED_TYPES))
    except Exception as error:
        raise ModelError(f"{path}: not a valid model file ({type(error).__name__})") from error
    if not isinstance(model, GroomingModel):
        raise ModelError(f"{path}: model file does not hold a Vigil model")
    try:
        model.check_compatible()
    except ValueError as error:
        raise ModelError(f"{path}: {error}") from error
    return model
