from __future__ import annotations

import time
from typing import TYPE_CHECKING

import matplotlib as mpl
import matplotlib.image
import numpy as np
import pytest

from scoring_engine.evaluation.metrics import EvaluationAccumulator
from scoring_engine.evaluation.plots import plot_evaluation, plot_report

if TYPE_CHECKING:
    from pathlib import Path

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def synthetic_accumulator(n: int, seed: int = 0) -> EvaluationAccumulator:
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.05
    scores = np.where(labels, rng.beta(5, 2, n), rng.beta(1, 8, n))
    acc = EvaluationAccumulator()
    for score, label in zip(scores, labels, strict=True):
        acc.add(score=float(score), label=bool(label), flagged_at=None, n_messages=8, source="x")
    return acc


def assert_valid_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert 10_000 < path.stat().st_size < 2_000_000
    image = matplotlib.image.imread(path)
    height, width = image.shape[:2]
    assert width > height > 200


def test_plot_report_writes_a_png_with_three_panels(tmp_path: Path):
    report = synthetic_accumulator(5000).report(0.5)
    out = tmp_path / "evaluation.png"

    plot_report(report, out)

    assert_valid_png(out)


def test_plot_evaluation_draws_from_the_accumulator_and_returns_the_report(tmp_path: Path):
    acc = synthetic_accumulator(2000)
    out = tmp_path / "eval.png"

    report = plot_evaluation(acc, 0.6, out)

    assert report.threshold == 0.6
    assert report.n == 2000
    assert_valid_png(out)


@pytest.mark.parametrize(
    "scored",
    [
        [],
        [(0.2, False), (0.9, False)],
        [(0.2, True), (0.9, True)],
        [(0.5, True), (0.5, False)],
    ],
    ids=["empty", "only-normal", "only-grooming", "all-scores-equal"],
)
def test_degenerate_inputs_still_plot_without_warnings(
    tmp_path: Path, scored: list[tuple[float, bool]]
):
    acc = EvaluationAccumulator()
    for score, label in scored:
        acc.add(score=score, label=label, flagged_at=None, n_messages=1, source=None)
    out = tmp_path / "degenerate.png"

    plot_evaluation(acc, 0.5, out)

    assert_valid_png(out)


def test_plotting_fifty_thousand_conversations_takes_under_two_seconds(tmp_path: Path):
    acc = synthetic_accumulator(50_000)
    plot_report(EvaluationAccumulator().report(0.5), tmp_path / "warm-up.png")

    start = time.perf_counter()
    plot_evaluation(acc, 0.5, tmp_path / "large.png")
    elapsed = time.perf_counter() - start

    assert elapsed < 2.0


def test_plotting_leaves_the_matplotlib_backend_alone(tmp_path: Path):
    before = mpl.get_backend()

    plot_report(synthetic_accumulator(500).report(0.5), tmp_path / "p.png")

    assert mpl.get_backend() == before
