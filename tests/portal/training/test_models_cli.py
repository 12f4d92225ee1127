"""`vigil-portal models train` and `models evaluate` as an operator runs them (synthetic data)."""

import json
import random

import pytest
from typer.testing import CliRunner

from portal.cli import app
from tests.factories import corpus, grooming_conversation, write_jsonl

runner = CliRunner()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    data = write_jsonl(root / "train.jsonl", corpus(240, 60, seed=1))
    transcripts = write_jsonl(
        root / "transcripts.jsonl", [grooming_conversation(random.Random(i), i) for i in range(12)]
    )
    out = root / "model"
    result = runner.invoke(
        app,
        [
            "models",
            "train",
            "--data",
            str(data),
            "--windows-from",
            str(transcripts),
            "--windows-per-conversation",
            "3",
            "--out",
            str(out),
            "--min-cases",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    return root, out, result.output


def test_train_writes_the_four_files_of_a_model_directory(trained):
    _, out, output = trained
    assert {p.name for p in out.iterdir()} == {
        "model.skops",
        "manifest.json",
        "MODEL_CARD.md",
        "metrics.json",
    }
    assert "cross-validated: recall" in output
    assert "36 extra windows" in output


def test_manifest_names_threshold_characteristics_and_data_digest(trained):
    _, out, _ = trained
    manifest = json.loads((out / "manifest.json").read_text())
    assert 0.0 < manifest["recommended_threshold"] < 1.0
    assert len(manifest["characteristics"]) == 10
    assert manifest["training_data_digest"].startswith("sha256:")
    assert manifest["engine_version"].startswith(">=")
    assert manifest["training"]["conversations"] == 300
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"cross_validation", "leave_one_source_out"}
    assert set(metrics["leave_one_source_out"]) == {"cooking", "movies", "support"}


def test_model_card_states_use_limits_operating_point_and_measured_metrics(trained):
    _, out, _ = trained
    card = (out / "MODEL_CARD.md").read_text()
    for heading in ("## Intended use", "## Training data", "## Operating point", "## Limits"):
        assert heading in card
    manifest = json.loads((out / "manifest.json").read_text())
    assert str(manifest["recommended_threshold"]) in card
    assert "recall at 1% false-positive rate" in card


def test_evaluate_reports_metrics_as_json_with_plot_and_scores(trained):
    root, out, _ = trained
    labeled = write_jsonl(root / "test.jsonl", corpus(60, 20, seed=7))
    plot = root / "eval.png"
    scores = root / "scores.jsonl"
    result = runner.invoke(
        app,
        [
            "models",
            "evaluate",
            str(out),
            str(labeled),
            "--json",
            "--plot",
            str(plot),
            "--scores-out",
            str(scores),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n"] == 80
    assert report["roc_auc"] > 0.9
    assert set(report["per_source"]) >= {"cooking", "movies", "support"}
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = [json.loads(line) for line in scores.read_text().splitlines()]
    assert len(lines) == 80
    assert {"id", "score", "flagged", "characteristics", "evidence", "first_flag_message"} <= set(
        lines[0]
    )


def test_evaluate_reports_bad_records_and_goes_on(trained):
    root, out, _ = trained
    labeled = root / "mixed.jsonl"
    good = (root / "test.jsonl").read_text().splitlines()[:3]
    labeled.write_text("\n".join([good[0], '{"id": 5, "messages": []}', good[1], "{oops", good[2]]))
    result = runner.invoke(app, ["models", "evaluate", str(out), str(labeled), "--json"])
    assert result.exit_code == 0, result.output
    assert f"{labeled}:2: id:" in result.stderr
    assert f"{labeled}:4:" in result.stderr
    assert json.loads(result.stdout)["summary"]["rejected"] == 2


def test_evaluate_strict_stops_at_the_first_bad_record(trained):
    root, out, _ = trained
    labeled = root / "bad.jsonl"
    labeled.write_text('{"id": "a", "messages": "nope"}\n')
    result = runner.invoke(app, ["models", "evaluate", str(out), str(labeled), "--strict"])
    assert result.exit_code == 2
    assert f"{labeled}:1: messages" in result.stderr


def test_evaluate_with_a_missing_model_directory_is_a_bundle_error(tmp_path):
    labeled = write_jsonl(tmp_path / "x.jsonl", corpus(2, 2))
    result = runner.invoke(app, ["models", "evaluate", str(tmp_path / "none"), str(labeled)])
    assert result.exit_code == 4
    assert "no manifest" in result.stderr


def test_train_without_both_labels_is_bad_input(tmp_path):
    data = write_jsonl(tmp_path / "only-normal.jsonl", corpus(30, 0))
    result = runner.invoke(
        app, ["models", "train", "--data", str(data), "--out", str(tmp_path / "m")]
    )
    assert result.exit_code == 2
    assert "both grooming and normal" in result.stderr
