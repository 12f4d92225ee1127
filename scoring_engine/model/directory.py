"""A model directory: ``model.skops``, ``manifest.json``, ``MODEL_CARD.md`` (and ``metrics.json``).

``vigil-portal models train`` writes one; ``bundles publish`` packs one into a signed bundle;
the engine installs a verified bundle as one. Loading checks the model file against the
digest the manifest records before the file is parsed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from scoring_engine.errors import ModelError
from scoring_engine.model.persistence import MODEL_FILE, load_model, save_model
from scoring_engine.model.scorer import GroomingModel

MANIFEST_FILE = "manifest.json"
CARD_FILE = "MODEL_CARD.md"
METRICS_FILE = "metrics.json"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ModelError(f"{path}: no manifest; is {directory} a model directory?") from error
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelError(f"{path}: unreadable manifest: {error}") from error
    if not isinstance(manifest, dict):
        raise ModelError(f"{path}: manifest is not a JSON object")
    return manifest


def load_model_dir(directory: Path) -> tuple[GroomingModel, dict[str, Any]]:
    """The model and manifest of a directory, the model file checked against the manifest."""
    manifest = read_manifest(directory)
    model_path = directory / MODEL_FILE
    expected = manifest.get("model_sha256")
    if not model_path.is_file():
        raise ModelError(f"{model_path}: missing model file")
    if expected is not None and file_sha256(model_path) != expected:
        raise ModelError(f"{model_path}: does not match the digest in {MANIFEST_FILE}")
    return load_model(model_path), manifest


def write_model_dir(
    directory: Path,
    model: GroomingModel,
    manifest: dict[str, Any],
    card: str,
    metrics: dict[str, Any],
) -> dict[str, Any]:
    """Write a model directory; returns the manifest with the model file's digest."""
    directory.mkdir(parents=True, exist_ok=True)
    model_path = directory / MODEL_FILE
    save_model(model, model_path)
    manifest = {**manifest, "model_sha256": file_sha256(model_path)}
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    (directory / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    (directory / CARD_FILE).write_text(card, encoding="utf-8")
    return manifest
