"""Retraining with moderator feedback: `vigil-portal models retrain` (synthetic data only)."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from typer.testing import CliRunner

from portal.cli import app
from portal.errors import InvalidInputError
from portal.events.service import list_events
from portal.feedback.models import Feedback
from portal.training.card import render_model_card
from portal.training.classifier import OutsideFoldsClassifier
from portal.training.feedback import FeedbackExample
from portal.training.pipeline import TrainingConfig, TrainingData, train_model
from portal.training.retrain import (
    FeedbackSet,
    NoFeedbackError,
    TrainingDataMismatchError,
    check_training_data,
    config_from_base,
    retrain_with_feedback,
)
from scoring_engine.conversation import Conversation, Message
from scoring_engine.model.classifier import CalibratedLinearClassifier
from scoring_engine.model.features import N_HASH_FEATURES, featurize
from scoring_engine.model.vectors import FEATURE_DIM, FeatureVector
from tests.factories import corpus, grooming_conversation, write_jsonl

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from sqlalchemy.orm import Session

    from portal.licenses.models import License
    from tests.portal.support import PortalCli

runner = CliRunner()
CONFIG = TrainingConfig(min_positive_groups=2, leave_one_source_out=False, folds=3)


def vector_of(conversation: Conversation) -> FeatureVector:
    return FeatureVector.from_row(featurize([conversation]).features())


def example(conversation: Conversation, verdict: str, **overrides: object) -> FeedbackExample:
    values: dict[str, object] = {
        "feedback_id": str(uuid.uuid4()),
        "organisation": "Example Chat Ltd",
        "bundle": "vigil-2026.11.0",
        "verdict": verdict,
        "score": 0.9,
        "vector": vector_of(conversation),
    }
    values.update(overrides)
    return FeedbackExample(**values)  # type: ignore[arg-type]


def gaming_chat(index: int) -> Conversation:
    """Ordinary chat between gamers that uses words of the grooming lines ("home alone",
    "meet", "secret"): what a platform's moderators mark not_grooming."""
    lines = [
        "are you home alone tonight for the raid",
        "lets meet at the park map spawn",
        "the secret level is behind the waterfall",
        "send me a picture of your build",
        "you are my special healer",
    ]
    rng = random.Random(index)
    messages = tuple(Message(author=f"u{1 + i % 2}", text=rng.choice(lines)) for i in range(6))
    return Conversation(id=f"game-{index}", messages=messages, label="normal", source="games")


@pytest.fixture(scope="module")
def research_data() -> TrainingData:
    return TrainingData.from_conversations(corpus(150, 50, seed=3), digest="0" * 64)


def test_feedback_rows_are_fitted_on_but_never_measured(research_data: TrainingData) -> None:
    feedback = FeedbackSet.collect(
        [example(gaming_chat(i), "not_grooming") for i in range(20)]
        + [example(grooming_conversation(random.Random(i), 100 + i), "grooming") for i in range(5)]
    )
    config = TrainingConfig(min_positive_groups=2, folds=3)  # sources left out too
    base = train_model(research_data, config)
    data = research_data.with_feedback(feedback.X, feedback.labels, feedback.ids)
    candidate = train_model(data, config)
    assert set(candidate.metrics["leave_one_source_out"]) == {"cooking", "movies", "support"}
    assert candidate.manifest["training"]["conversations"] == 200
    assert candidate.manifest["training"]["feedback_rows"] == 25
    assert candidate.manifest["training"]["extra_windows"] == 0
    cv = candidate.metrics["cross_validation"]
    assert (cv["n"], cv["n_positive"]) == (200, 50)
    # Feedback rows have no out-of-fold score: they were in every training fold.
    assert np.isnan(candidate.out_of_fold_scores[200:]).all()
    assert not np.isnan(candidate.out_of_fold_scores[:200]).any()
    # The shipped estimator is the class the engine's allow-list loads.
    assert type(candidate.model.classifier) is CalibratedLinearClassifier
    assert base.manifest["training"]["feedback_rows"] == 0


def test_research_rows_keep_the_folds_they_have_without_feedback(
    research_data: TrainingData,
) -> None:
    X = research_data.X
    y = research_data.labels
    params: dict[str, Any] = {
        "C": 0.3,
        "min_positive_groups": 2,
        "filtered_columns": N_HASH_FEATURES,
    }
    plain = CalibratedLinearClassifier(**params).fit(X, y, groups=research_data.groups)
    outside = OutsideFoldsClassifier(**params).fit(
        X, y, groups=research_data.groups, outside_folds=np.zeros(y.size, dtype=bool)
    )
    np.testing.assert_allclose(outside.out_of_fold_decisions_, plain.out_of_fold_decisions_)
    np.testing.assert_allclose(outside.as_engine_classifier().coef_, plain.coef_)


def test_not_grooming_feedback_lowers_the_score_of_chat_like_it(
    research_data: TrainingData,
) -> None:
    feedback = FeedbackSet.collect([example(gaming_chat(i), "not_grooming") for i in range(30)])
    config = TrainingConfig(
        min_positive_groups=2, leave_one_source_out=False, folds=3, feedback_weight=5.0
    )
    base = train_model(research_data, config)
    candidate = retrain_with_feedback(research_data, feedback, base.manifest, config)
    unseen = [gaming_chat(1000 + i) for i in range(10)]
    before = np.mean([s.score for s in base.model.score_batch(unseen)])
    after = np.mean([s.score for s in candidate.model.score_batch(unseen)])
    assert after < before / 2


def test_vectors_of_another_feature_space_are_skipped_and_counted() -> None:
    good = vector_of(gaming_chat(0))
    old = FeatureVector(indices=good.indices, values=good.values, version=1)
    small = FeatureVector(indices=good.indices[:1] % 100, values=good.values[:1], dim=100)
    feedback = FeedbackSet.collect(
        [
            example(gaming_chat(0), "not_grooming"),
            example(gaming_chat(1), "imminent_threat", organisation="Other Chat"),
            example(gaming_chat(2), "grooming", vector=old),
            example(gaming_chat(3), "grooming", vector=small),
        ]
    )
    summary = feedback.summary(1.0)
    assert summary["records"] == 2
    assert (summary["not_grooming"], summary["imminent_threat"], summary["grooming"]) == (1, 1, 0)
    assert summary["organisations"] == 2
    assert summary["skipped"] == 2
    assert set(summary["skipped_reasons"]) == {
        "feature version 1 (engine: 2)",
        f"dimension 100 (engine: {FEATURE_DIM})",
    }
    assert feedback.labels.tolist() == [False, True]  # imminent threats are grooming
    # Each used record is its vector, as a row of the model's feature space.
    assert feedback.X.shape == (2, FEATURE_DIM)
    assert (feedback.X[0] != good.to_row()).nnz == 0


def test_without_usable_feedback_nothing_is_trained(research_data: TrainingData) -> None:
    with pytest.raises(NoFeedbackError, match="no feedback has been received") as raised:
        retrain_with_feedback(research_data, FeedbackSet.collect([]), {}, CONFIG)
    assert raised.value.exit_code == 2
    old = FeatureVector(indices=np.array([1], "<i4"), values=np.array([1.0], "<f4"), version=1)
    only_old = FeedbackSet.collect([example(gaming_chat(0), "grooming", vector=old)])
    with pytest.raises(NoFeedbackError, match="every record was skipped"):
        only_old.require_some()


def test_the_base_manifest_is_the_recipe() -> None:
    manifest = {
        "name": "reference",
        "metrics": {"max_unseen_source_flag_rate": 0.04},
        "training": {
            "C": 0.5,
            "folds": 4,
            "min_positive_groups": 7,
            "max_source_flag_rate": 0.02,
            "max_unseen_source_flag_rate": 0.03,
            "extra_window_weight": 0.2,
        },
    }
    config = config_from_base(manifest, feedback_weight=2.0)
    assert (config.C, config.folds, config.min_positive_groups) == (0.5, 4, 7)
    assert (config.max_source_flag_rate, config.max_unseen_source_flag_rate) == (0.02, 0.03)
    assert (config.window_weight, config.feedback_weight, config.name) == (0.2, 2.0, "reference")
    assert config.leave_one_source_out  # the base measured unseen sources
    with pytest.raises(InvalidInputError, match="no 'training' block"):
        config_from_base({"name": "x"})
    with pytest.raises(InvalidInputError, match="lacks 'C'"):
        config_from_base({"training": {"folds": 5}})
    with pytest.raises(InvalidInputError, match="positive"):
        config_from_base(manifest, feedback_weight=0.0)


def test_other_training_data_is_refused_naming_both_digests() -> None:
    manifest = {"training_data_digest": "sha256:" + "a" * 64}
    check_training_data(manifest, "a" * 64)
    with pytest.raises(TrainingDataMismatchError) as raised:
        check_training_data(manifest, "b" * 64)
    assert "sha256:" + "a" * 64 in str(raised.value)
    assert "sha256:" + "b" * 64 in str(raised.value)
    assert raised.value.exit_code == 2


#### The command ####


@pytest.fixture(scope="module")
def base_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A base model trained with `models train`, and its two data files."""
    root = tmp_path_factory.mktemp("base")
    data = write_jsonl(root / "train.jsonl", corpus(150, 50, seed=1))
    transcripts = write_jsonl(
        root / "transcripts.jsonl", [grooming_conversation(random.Random(i), i) for i in range(8)]
    )
    out = root / "model"
    result = runner.invoke(
        app,
        [
            "models",
            "train",
            *("--data", str(data), "--windows-from", str(transcripts)),
            *("--windows-per-conversation", "2", "--min-cases", "2", "--folds", "3"),
            *("--no-leave-one-source-out", "--out", str(out)),
        ],
    )
    assert result.exit_code == 0, result.output
    return out, data, transcripts


@pytest.fixture
def add_feedback(
    session: Session, make_license: Callable[..., License]
) -> Callable[[Conversation, str], Feedback]:
    licenses: dict[str, License] = {}

    def factory(
        conversation: Conversation, verdict: str, org: str = "Example Chat Ltd"
    ) -> Feedback:
        if org not in licenses:
            licenses[org] = make_license(org)
        license_ = licenses[org]
        vector = vector_of(conversation)
        row = Feedback(
            feedback_id=uuid.uuid4(),
            license_id=license_.id,
            organisation_id=license_.organisation_id,
            engine_id=uuid.uuid4(),
            batch_id=uuid.uuid4(),
            bundle="vigil-2026.11.0",
            score=0.93,
            threshold=0.8,
            characteristics={"secrecy": 0.6},
            verdict=verdict,
            reviewed_at=datetime.now(UTC),
            vector_version=vector.version,
            vector_dim=vector.dim,
            vector_nnz=int(vector.indices.size),
            vector=vector.to_bytes(),
            shared_text=None,
        )
        session.add(row)
        session.flush()
        return row

    return factory


def retrain_args(base: tuple[Path, Path, Path], out: Path, *extra: str) -> list[str]:
    model, data, transcripts = base
    return [
        "models",
        "retrain",
        *("--base", str(model), "--data", str(data), "--windows-from", str(transcripts)),
        "--with-feedback",
        *("--out", str(out)),
        *extra,
    ]


def test_retrain_writes_a_candidate_whose_card_names_the_feedback(
    cli: PortalCli,
    session: Session,
    base_model: tuple[Path, Path, Path],
    add_feedback: Callable[..., Feedback],
    tmp_path: Path,
) -> None:
    for i in range(6):
        add_feedback(gaming_chat(i), "not_grooming")
    add_feedback(grooming_conversation(random.Random(50), 50), "grooming", org="Other Chat")
    add_feedback(grooming_conversation(random.Random(51), 51), "imminent_threat")
    evaluation = write_jsonl(tmp_path / "eval.jsonl", corpus(60, 20, seed=9))
    out = tmp_path / "candidate"
    result = cli(*retrain_args(base_model, out, "--eval", str(evaluation)))
    assert result.exit_code == 0, result.output
    assert "feedback: 8 records (1 grooming, 1 imminent threat, 6 not grooming)" in result.stdout

    manifest = json.loads((out / "manifest.json").read_text())
    base_manifest = json.loads((base_model[0] / "manifest.json").read_text())
    assert manifest["training_data_digest"] == base_manifest["training_data_digest"]
    assert manifest["base"]["model_sha256"] == base_manifest["model_sha256"]
    feedback = manifest["feedback"]
    assert feedback["records"] == 8
    assert (feedback["grooming"], feedback["imminent_threat"], feedback["not_grooming"]) == (
        1,
        1,
        6,
    )
    assert feedback["organisations"] == 2
    assert feedback["bundles"] == {"vigil-2026.11.0": 8}
    assert feedback["skipped"] == 0
    assert manifest["training"] == {
        **base_manifest["training"],
        "feedback_rows": 8,
        "feedback_weight": 1.0,
    }
    schemes = [c["scheme"] for c in manifest["comparison"]]
    assert schemes == ["cross-validation", "evaluation"]
    on_eval = manifest["comparison"][1]
    assert (on_eval["n"], on_eval["n_positive"]) == (80, 20)
    assert set(on_eval["metrics"]) == {"pr_auc", "recall_at_fpr_0.01", "recall_at_fpr_0.001"}

    card = (out / "MODEL_CARD.md").read_text()
    assert "retrained with 8 moderator verdicts" in card
    assert "1 grooming, 1 imminent threat, 6 not grooming) from 2 organisations" in card
    assert "## Compared with the base model" in card
    assert "eval.jsonl: 80 labelled conversations, 20 grooming" in card

    event = list_events(session, subject_id=manifest["name"])[0]
    assert event.tag == "model:retrained"
    assert event.payload["feedback"]["records"] == 8
    assert event.payload["model_sha256"] == manifest["model_sha256"]


def test_retrain_on_other_data_is_refused_naming_both_digests(
    cli: PortalCli,
    base_model: tuple[Path, Path, Path],
    add_feedback: Callable[..., Feedback],
    tmp_path: Path,
) -> None:
    add_feedback(gaming_chat(0), "not_grooming")
    model, _, transcripts = base_model
    other = write_jsonl(tmp_path / "train.jsonl", corpus(150, 50, seed=2))
    out = tmp_path / "candidate"
    result = cli(*retrain_args((model, other, transcripts), out))
    assert result.exit_code == 2
    base_digest = json.loads((model / "manifest.json").read_text())["training_data_digest"]
    assert base_digest in result.stderr
    assert "is not the base model's" in result.stderr
    assert not out.exists()


def test_retrain_without_feedback_writes_nothing(
    cli: PortalCli, base_model: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "candidate"
    result = cli(*retrain_args(base_model, out))
    assert result.exit_code == 2
    assert "no feedback has been received yet" in result.stderr
    assert not out.exists()


def test_retrain_needs_the_with_feedback_flag_and_the_data_files(
    cli: PortalCli, base_model: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    model = base_model[0]
    result = cli("models", "retrain", "--base", str(model), "--out", str(tmp_path / "c"))
    assert result.exit_code == 2
    assert "--with-feedback" in result.stderr
    result = cli(
        "models", "retrain", "--base", str(model), "--with-feedback", "--out", str(tmp_path / "c")
    )
    assert result.exit_code == 2
    assert "keeps only their digest" in result.stderr
    result = cli(*retrain_args(base_model, model))
    assert result.exit_code == 2
    assert "--out must not be the --base directory" in result.stderr


def test_the_card_names_skipped_feedback_and_what_the_gate_does_not_judge(
    research_data: TrainingData,
) -> None:
    good = [example(gaming_chat(i), "not_grooming") for i in range(3)]
    old = FeatureVector(indices=np.array([1], "<i4"), values=np.array([1.0], "<f4"), version=1)
    feedback = FeedbackSet.collect([*good, example(gaming_chat(9), "grooming", vector=old)])
    base = train_model(research_data, CONFIG)
    candidate = retrain_with_feedback(research_data, feedback, base.manifest, CONFIG)
    card = render_model_card(candidate.manifest, candidate.metrics)
    assert "1 feedback record was skipped (1 with feature version 1 (engine: 2))" in card
    assert "Recall at 0.1% FPR: shown, not judged by the promotion gate" in card
