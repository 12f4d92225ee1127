from __future__ import annotations

import io
import json
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from rich.console import Console
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from scoring_engine.evaluation.metrics import (
    MAX_CURVE_POINTS,
    EvaluationAccumulator,
    f_beta,
    format_report,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

POS, NEG = True, False


def accumulate(
    scored: Iterable[tuple[float, bool]], *, source: str | None = None
) -> EvaluationAccumulator:
    acc = EvaluationAccumulator()
    for score, label in scored:
        acc.add(score=score, label=label, flagged_at=None, n_messages=10, source=source)
    return acc


# Three grooming (0.9, 0.6, 0.3) and three normal (0.7, 0.2, 0.1) conversations.
SMALL = [(0.9, POS), (0.7, NEG), (0.6, POS), (0.3, POS), (0.2, NEG), (0.1, NEG)]


def assert_plain_json(value: Any) -> None:
    """Only JSON's own types, recursively, and no NaN or infinity."""
    if isinstance(value, dict):
        assert all(isinstance(k, str) for k in value)
        for v in value.values():
            assert_plain_json(v)
    elif isinstance(value, list):
        for v in value:
            assert_plain_json(v)
    elif isinstance(value, float):
        assert math.isfinite(value)
    else:
        assert value is None or type(value) in (int, str, bool)


def test_perfect_separation_reaches_full_recall_at_both_false_positive_rates():
    report = accumulate([(0.1, NEG), (0.2, NEG), (0.3, NEG), (0.8, POS), (0.9, POS)]).report(0.5)

    assert report.recall_at_fpr == {"0.01": 1.0, "0.001": 1.0}
    assert report.threshold_at_fpr == {"0.01": 0.8, "0.001": 0.8}
    assert report.roc_auc == 1.0
    assert report.pr_auc == 1.0
    assert (report.precision, report.recall, report.false_positive_rate) == (1.0, 1.0, 0.0)


def test_threshold_metrics_match_hand_computed_values():
    # At 0.65, 0.9 (grooming) and 0.7 (normal) are flagged: P = 1/2, R = 1/3, FPR = 1/3.
    report = accumulate(SMALL).report(0.65)

    assert report.flagged == 2
    assert report.true_positives == 1
    assert report.false_positives == 1
    assert report.precision == pytest.approx(1 / 2)
    assert report.recall == pytest.approx(1 / 3)
    assert report.false_positive_rate == pytest.approx(1 / 3)
    assert report.f1 == pytest.approx(2 / 5)
    # F0.5 = 1.25 * (1/2)(1/3) / (0.25 * 1/2 + 1/3) = 5/11: precision weighs more than recall.
    assert report.f0_5 == pytest.approx(5 / 11)


def test_score_equal_to_threshold_is_flagged():
    report = accumulate(SMALL).report(0.6)

    assert report.true_positives == 2
    assert report.flagged == 3


def test_ranking_metrics_match_hand_computed_values():
    report = accumulate(SMALL).report(0.5)

    # 7 of the 9 (grooming, normal) pairs are ordered correctly.
    assert report.roc_auc == pytest.approx(7 / 9)
    # Ranked: P N P P N N -> AP = 1/3 * (1 + 2/3 + 3/4).
    assert report.pr_auc == pytest.approx(29 / 36)
    # Only "flag 0.9 and above" keeps FPR under 1%: recall 1/3.
    assert report.recall_at_fpr == {"0.01": pytest.approx(1 / 3), "0.001": pytest.approx(1 / 3)}
    assert report.threshold_at_fpr["0.01"] == 0.9
    assert report.prevalence == 0.5


def test_ranking_metrics_agree_with_scikit_learn_on_tied_scores():
    rng = np.random.default_rng(7)
    labels = rng.random(5000) < 0.1
    # Rounded scores create many ties.
    scores = np.round(np.clip(rng.normal(0.3 + 0.3 * labels, 0.15), 0.0, 1.0), 2)
    acc = EvaluationAccumulator()
    for s, y in zip(scores, labels, strict=True):
        acc.add(score=float(s), label=bool(y), flagged_at=None, n_messages=5, source=None)

    report = acc.report(0.5)

    assert report.pr_auc == pytest.approx(average_precision_score(labels, scores))
    assert report.roc_auc == pytest.approx(roc_auc_score(labels, scores))
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    for key, target in (("0.01", 0.01), ("0.001", 0.001)):
        assert report.recall_at_fpr[key] == pytest.approx(tpr[fpr <= target].max())
    precision, recall, _ = precision_recall_curve(labels, scores)
    assert report.pr_curve is not None
    assert report.pr_curve.precision == pytest.approx(precision)
    assert report.pr_curve.recall == pytest.approx(recall)


def test_operating_point_at_recall_target_respects_the_false_positive_rate():
    rng = np.random.default_rng(3)
    labels = rng.random(20000) < 0.2
    scores = np.clip(rng.normal(0.4 + 0.2 * labels, 0.1), 0.0, 1.0)
    acc = EvaluationAccumulator()
    for s, y in zip(scores, labels, strict=True):
        acc.add(score=float(s), label=bool(y), flagged_at=None, n_messages=5, source=None)

    report = acc.report(0.5)

    threshold = report.threshold_at_fpr["0.01"]
    assert threshold is not None
    flagged = scores >= threshold
    assert flagged[~labels].mean() <= 0.01
    assert flagged[labels].mean() == pytest.approx(report.recall_at_fpr["0.01"])


def test_equal_scores_give_chance_auc_and_no_recall_at_low_false_positive_rate():
    report = accumulate([(0.5, POS), (0.5, NEG), (0.5, NEG), (0.5, POS)]).report(0.7)

    assert report.roc_auc == 0.5
    assert report.recall_at_fpr == {"0.01": 0.0, "0.001": 0.0}
    assert report.threshold_at_fpr == {"0.01": None, "0.001": None}
    assert report.flagged == 0
    assert report.precision is None
    assert report.recall == 0.0
    assert any("nothing scored at or above" in note for note in report.notes)


def test_expected_calibration_error_matches_hand_computed_value():
    # Bin [0, 0.1): mean 0.05, half grooming -> gap 0.45; bin [0.9, 1]: mean 0.95, all
    # grooming -> gap 0.05. Each holds half the conversations: ECE = 0.25.
    report = accumulate([(0.05, NEG), (0.05, POS), (0.95, POS), (0.95, POS)]).report(0.5)

    assert report.ece == pytest.approx(0.25)
    # Four conversations make four one-conversation bins: (0.05 + 0.95 + 0.05 + 0.05) / 4.
    assert report.ece_equal_mass == pytest.approx(0.275)
    first, last = report.calibration_bins[0], report.calibration_bins[-1]
    assert (first.lower, first.upper, first.count) == (0.0, 0.1, 2)
    assert first.mean_score == pytest.approx(0.05)
    assert first.fraction_positive == 0.5
    assert (last.lower, last.upper, last.count) == (0.9, 1.0, 2)
    assert all(b.count == 0 and b.mean_score is None for b in report.calibration_bins[1:-1])


def test_perfectly_calibrated_scores_have_small_calibration_error():
    rng = np.random.default_rng(0)
    scores = rng.random(50000)
    labels = rng.random(50000) < scores
    acc = EvaluationAccumulator()
    for s, y in zip(scores, labels, strict=True):
        acc.add(score=float(s), label=bool(y), flagged_at=None, n_messages=5, source=None)

    report = acc.report(0.5)

    assert report.ece is not None
    assert report.ece < 0.02
    assert report.ece_equal_mass is not None
    assert report.ece_equal_mass < 0.02


def test_overconfident_scores_have_large_calibration_error():
    rng = np.random.default_rng(1)
    true_probability = rng.random(20000)
    labels = rng.random(20000) < true_probability
    # Says 0.99 or 0.01 where the truth averages 0.75 or 0.25: a gap of about 0.24.
    scores = np.where(true_probability > 0.5, 0.99, 0.01)
    acc = EvaluationAccumulator()
    for s, y in zip(scores, labels, strict=True):
        acc.add(score=float(s), label=bool(y), flagged_at=None, n_messages=5, source=None)

    report = acc.report(0.5)

    assert report.ece == pytest.approx(0.24, abs=0.02)
    assert report.ece_equal_mass == pytest.approx(0.24, abs=0.02)


def test_score_of_one_counts_in_the_last_bins():
    report = accumulate([(1.0, POS), (0.0, NEG)]).report(0.5)

    assert report.calibration_bins[-1].count == 1
    assert report.score_histogram.positive[-1] == 1
    assert report.score_histogram.negative[0] == 1
    assert len(report.score_histogram.bin_edges) == 21
    assert report.score_histogram.bin_edges[0] == 0.0
    assert report.score_histogram.bin_edges[-1] == 1.0


def test_score_histogram_counts_each_label_separately():
    report = accumulate([(0.01, NEG), (0.02, NEG), (0.51, NEG), (0.97, POS)]).report(0.5)

    assert report.score_histogram.negative[0] == 2
    assert report.score_histogram.negative[10] == 1
    assert report.score_histogram.positive[19] == 1
    assert sum(report.score_histogram.positive) + sum(report.score_histogram.negative) == 4


def test_per_source_reports_flag_rate_of_normal_sources_and_recall_of_grooming_sources():
    acc = EvaluationAccumulator()
    for score in (0.9, 0.1, 0.2, 0.3):
        acc.add(score=score, label=False, flagged_at=None, n_messages=3, source="gaming_chat")
    for score in (0.95, 0.4):
        acc.add(score=score, label=True, flagged_at=None, n_messages=3, source="pj_transcripts")
    acc.add(score=0.99, label=False, flagged_at=None, n_messages=3, source=None)

    per_source = acc.report(0.5).to_dict()["per_source"]

    assert per_source == {
        "gaming_chat": {
            "n_normal": 4,
            "flagged_normal": 1,
            "flag_rate": 0.25,
            "n_grooming": 0,
            "flagged_grooming": 0,
            "recall": None,
        },
        "pj_transcripts": {
            "n_normal": 0,
            "flagged_normal": 0,
            "flag_rate": None,
            "n_grooming": 2,
            "flagged_grooming": 1,
            "recall": 0.5,
        },
    }


def test_early_warning_reports_messages_read_before_the_first_flag():
    acc = EvaluationAccumulator()
    # Grooming flagged after reading 5 of 10, 10 of 10 and 1 of 4 messages; one never flagged.
    acc.add(score=0.9, label=True, flagged_at=4, n_messages=10, source=None)
    acc.add(score=0.8, label=True, flagged_at=9, n_messages=10, source=None)
    acc.add(score=0.9, label=True, flagged_at=0, n_messages=4, source=None)
    acc.add(score=0.2, label=True, flagged_at=None, n_messages=20, source=None)
    # Normal conversations do not count, flagged or not.
    acc.add(score=0.9, label=False, flagged_at=1, n_messages=50, source=None)

    early = acc.report(0.5).early_warning

    assert early.n_positive == 4
    assert early.n_flagged == 3
    assert early.fraction_flagged == 0.75
    assert early.median_messages == 5.0
    # Linear interpolation over [1, 5, 10] at 90%: 5 + 0.8 * 5.
    assert early.p90_messages == pytest.approx(9.0)
    assert early.median_fraction_read == 0.5
    assert early.p90_fraction_read == pytest.approx(0.9)


def test_without_grooming_conversations_ranking_metrics_are_undefined_with_a_note():
    report = accumulate([(0.2, NEG), (0.7, NEG), (0.1, NEG)]).report(0.5)

    assert report.pr_auc is None
    assert report.roc_auc is None
    assert report.recall_at_fpr == {"0.01": None, "0.001": None}
    assert report.recall is None
    assert report.f1 is None
    assert report.f0_5 is None
    assert report.precision == 0.0
    assert report.false_positive_rate == pytest.approx(1 / 3)
    assert report.early_warning.fraction_flagged is None
    assert report.pr_curve is None
    assert any("no grooming conversations" in note for note in report.notes)
    assert_plain_json(report.to_dict())


def test_without_normal_conversations_false_positive_metrics_are_undefined_with_a_note():
    report = accumulate([(0.2, POS), (0.7, POS)]).report(0.5)

    assert report.roc_auc is None
    assert report.pr_auc is None
    assert report.false_positive_rate is None
    assert report.recall == 0.5
    assert report.precision == 1.0
    assert any("no normal conversations" in note for note in report.notes)
    assert_plain_json(report.to_dict())


def test_empty_input_gives_an_all_undefined_report():
    report = EvaluationAccumulator().report(0.5)

    assert report.n == 0
    assert report.prevalence is None
    assert report.ece is None
    assert report.ece_equal_mass is None
    assert report.precision is None
    assert report.early_warning.median_messages is None
    assert report.per_source == ()
    assert report.notes == ("no conversations: every metric is undefined",)
    assert_plain_json(report.to_dict(include_curves=True))


def test_to_dict_is_plain_json_with_the_documented_keys():
    acc = accumulate(SMALL, source="chat")
    acc.add(score=0.8, label=True, flagged_at=2, n_messages=6, source=None)

    data = acc.report(0.5).to_dict(include_curves=True)

    assert_plain_json(data)
    json.dumps(data, allow_nan=False)
    assert set(data) == {
        "n",
        "n_positive",
        "n_negative",
        "prevalence",
        "pr_auc",
        "roc_auc",
        "recall_at_fpr",
        "threshold_at_fpr",
        "threshold",
        "flagged",
        "true_positives",
        "false_positives",
        "precision",
        "recall",
        "f1",
        "f0_5",
        "false_positive_rate",
        "ece",
        "ece_equal_mass",
        "calibration_bins",
        "score_histogram",
        "early_warning",
        "per_source",
        "notes",
        "pr_curve",
    }
    assert set(data["calibration_bins"][0]) == {
        "lower",
        "upper",
        "count",
        "mean_score",
        "fraction_positive",
    }
    assert "pr_curve" not in acc.report(0.5).to_dict()


def test_pr_curve_kept_for_plotting_is_thinned_for_large_inputs():
    rng = np.random.default_rng(5)
    acc = EvaluationAccumulator()
    for score, label in zip(rng.random(20000), rng.random(20000) < 0.3, strict=True):
        acc.add(score=float(score), label=bool(label), flagged_at=None, n_messages=2, source=None)

    curve = acc.report(0.5).pr_curve

    assert curve is not None
    assert 100 < len(curve.recall) <= MAX_CURVE_POINTS
    assert len(curve.precision) == len(curve.recall)
    # Runs from "flag everything" (recall 1) to "flag nothing" (recall 0).
    assert curve.recall[0] == 1.0
    assert curve.recall[-1] == 0.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"score": float("nan")}, "score"),
        ({"score": 1.5}, "score"),
        ({"score": -0.1}, "score"),
        ({"n_messages": -1}, "n_messages"),
        ({"flagged_at": 10}, "flagged_at"),
        ({"flagged_at": -1}, "flagged_at"),
    ],
)
def test_add_rejects_impossible_values(change: dict[str, Any], message: str):
    values: dict[str, Any] = {
        "score": 0.5,
        "label": True,
        "flagged_at": None,
        "n_messages": 10,
        "source": None,
    }
    values.update(change)

    with pytest.raises(ValueError, match=message):
        EvaluationAccumulator().add(**values)


def test_report_rejects_threshold_outside_unit_interval():
    with pytest.raises(ValueError, match="threshold"):
        accumulate(SMALL).report(1.2)


def test_accumulator_counts_conversations_and_keeps_reporting_after_more_adds():
    acc = accumulate(SMALL)
    first = acc.report(0.5)
    acc.add(score=0.99, label=True, flagged_at=None, n_messages=1, source=None)

    assert len(acc) == 7
    assert first.n == 6
    assert acc.report(0.5).n == 7


def test_f_beta_formula():
    assert f_beta(0.5, 0.25, 1.0) == pytest.approx(2 * 0.5 * 0.25 / 0.75)
    assert f_beta(0.5, 0.25, 0.5) == pytest.approx(1.25 * 0.125 / (0.25 * 0.5 + 0.25))
    assert f_beta(0.0, 0.0, 0.5) == 0.0
    assert f_beta(None, 0.5, 1.0) is None


def test_format_report_renders_a_readable_table():
    acc = accumulate(SMALL, source="chat")
    table = format_report(acc.report(0.5))
    console = Console(file=io.StringIO(), width=100, record=True)

    console.print(table)
    text = console.export_text()

    assert "PR-AUC" in text
    assert "recall at FPR <= 1.0%" in text
    assert "F0.5" in text
    assert "source chat" in text


def test_format_report_shows_notes_for_undefined_metrics():
    console = Console(file=io.StringIO(), width=100, record=True)

    console.print(format_report(EvaluationAccumulator().report(0.5)))

    assert "no conversations" in console.export_text()
