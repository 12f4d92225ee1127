"""The committed reference model, on real data when it is present (VIGIL_DATA_DIR)."""

from __future__ import annotations

import json
import os
import zipfile
from itertools import islice
from pathlib import Path

import numpy as np
import pytest

from scoring_engine.evaluation import EvaluationAccumulator
from scoring_engine.formats import read_conversations
from scoring_engine.model.directory import load_model_dir
from scoring_engine.model.persistence import ALLOWED_TYPES
from scoring_engine.runner import write_scores

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "models" / "reference"
DATA = Path(os.environ.get("VIGIL_DATA_DIR", ROOT.parent / "shared" / "data"))


def _data(relative: str) -> Path:
    path = DATA / relative
    if not path.exists():
        pytest.skip(f"real data not available at {path} (set VIGIL_DATA_DIR)")
    return path


def test_reference_model_loads_with_its_manifest_and_card():
    model, manifest = load_model_dir(REFERENCE)
    assert manifest["name"] == "reference"
    assert model.recommended_threshold == manifest["recommended_threshold"]
    card = (REFERENCE / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "recall at 1% false-positive rate" in card
    assert (REFERENCE / "model.skops").stat().st_size < 5 * 1024 * 1024


def test_reference_model_file_holds_only_allowed_types_and_numeric_arrays():
    with zipfile.ZipFile(REFERENCE / "model.skops") as archive:
        names = archive.namelist()
        schema = json.loads(archive.read("schema.json"))
    assert all(name == "schema.json" or name.endswith(".npy") for name in names)
    types = set()

    def walk(node):
        if isinstance(node, dict):
            if "__module__" in node and "__class__" in node:
                types.add(f"{node['__module__']}.{node['__class__']}")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    custom = {t for t in types if t.startswith("scoring_engine")}
    assert custom <= set(ALLOWED_TYPES)
    # No string in the file is longer than a type or attribute name: no message text.
    strings = []

    def collect(node):
        if isinstance(node, str):
            strings.append(node)
        elif isinstance(node, dict):
            for key, value in node.items():
                collect(key)
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(schema)
    assert max(len(s) for s in strings) < 80


@pytest.mark.data
def test_reference_model_separates_grooming_from_normal_on_development_windows():
    path = _data("windows/dev.jsonl.gz")
    model, _ = load_model_dir(REFERENCE)
    # Every 8th conversation of the first 24,000: a spread of sources, seconds to score.
    conversations = list(islice(read_conversations([path]), 0, 24_000, 8))
    accumulator = EvaluationAccumulator()
    write_scores(model.score_stream(conversations), None, accumulator=accumulator)
    report = accumulator.report(model.recommended_threshold)
    # The model was trained on these windows: this guards against a broken build of the
    # reference model, not a measure of quality (that is the model card's cross-validation).
    assert report.roc_auc is not None
    assert report.roc_auc > 0.98
    assert report.ece is not None
    assert report.ece < 0.05


@pytest.mark.data
def test_reference_model_scores_the_pan12_sample_in_its_own_format():
    path = _data(
        "pan12-sample/test/pan12-sexual-predator-identification-test-corpus-2012-05-17.xml"
    )
    model, _ = load_model_dir(REFERENCE)
    results = list(model.score_stream(read_conversations([path])))
    assert len(results) == 9
    scores = np.array([r.score for r in results])
    assert np.all((scores >= 0) & (scores <= 1))
