import json

import pytest
import skops.io as sio

from scoring_engine.errors import ModelError
from scoring_engine.model.directory import load_model_dir, write_model_dir
from scoring_engine.model.persistence import load_model, save_model
from tests.factories import corpus


def test_model_round_trips_through_skops(tmp_path, small_model):
    path = tmp_path / "model.skops"
    save_model(small_model, path)
    loaded = load_model(path)
    conversations = corpus(5, 5, seed=9)
    assert [r.score for r in loaded.score_batch(conversations)] == [
        r.score for r in small_model.score_batch(conversations)
    ]


class Sneaky:
    """A type no engine allow-list names."""


def test_model_file_with_a_type_outside_the_allow_list_is_refused(tmp_path):
    path = tmp_path / "model.skops"
    sio.dump(Sneaky(), path)
    with pytest.raises(ModelError, match=r"does not allow: .*Sneaky"):
        load_model(path)


def test_garbage_model_file_is_refused(tmp_path):
    path = tmp_path / "model.skops"
    path.write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="not a valid model file"):
        load_model(path)


def test_model_directory_refuses_a_model_file_that_does_not_match_its_manifest(
    tmp_path, small_model
):
    write_model_dir(tmp_path, small_model, {"name": "t"}, "card", {})
    _, manifest = load_model_dir(tmp_path)
    assert manifest["model_sha256"]
    (tmp_path / "model.skops").write_bytes((tmp_path / "model.skops").read_bytes() + b"x")
    with pytest.raises(ModelError, match="does not match"):
        load_model_dir(tmp_path)


def test_model_directory_without_manifest_is_refused(tmp_path):
    with pytest.raises(ModelError, match="no manifest"):
        load_model_dir(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps([1]))
    with pytest.raises(ModelError, match="not a JSON object"):
        load_model_dir(tmp_path)


def test_model_of_another_feature_version_is_refused(tmp_path, small_model):
    small_model.feature_version += 1
    try:
        save_model(small_model, tmp_path / "model.skops")
    finally:
        small_model.feature_version -= 1
    with pytest.raises(ModelError, match="features are version"):
        load_model(tmp_path / "model.skops")
