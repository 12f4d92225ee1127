"""The `--plot FILE.png` of the evaluate commands: PR curve, reliability curve, score histograms.

Everything is drawn from an `EvaluationReport` (which carries a thinned PR curve), so plotting
costs the same for 1,000 or 1,000,000 conversations. The figure is rendered with an explicit
Agg canvas: no pyplot, no change to matplotlib's global backend or state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from matplotlib.axes import Axes

    from scoring_engine.evaluation.metrics import EvaluationAccumulator, EvaluationReport

NORMAL_COLOUR = "tab:blue"
GROOMING_COLOUR = "tab:red"


def plot_evaluation(
    accumulator: EvaluationAccumulator, threshold: float, out_path: Path
) -> EvaluationReport:
    """Compute the report at `threshold`, write its PNG to `out_path` and return the report."""
    report = accumulator.report(threshold)
    plot_report(report, out_path)
    return report


def plot_report(report: EvaluationReport, out_path: Path, *, title: str | None = None) -> None:
    """Write one PNG with three panels: precision-recall, reliability, score histograms."""
    # matplotlib is imported here so that importing the evaluation package stays cheap.
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    figure = Figure(figsize=(15, 4.6), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    pr_axes, calibration_axes, histogram_axes = figure.subplots(1, 3)
    _draw_pr_curve(pr_axes, report)
    _draw_calibration(calibration_axes, report)
    _draw_histograms(histogram_axes, report)
    figure.suptitle(
        title
        or f"{report.n} conversations ({report.n_positive} grooming), "
        f"threshold {report.threshold:g}"
    )
    figure.savefig(out_path, format="png")


def _no_data(axes: Axes, reason: str) -> None:
    axes.text(0.5, 0.5, reason, ha="center", va="center", transform=axes.transAxes, wrap=True)


def _draw_pr_curve(axes: Axes, report: EvaluationReport) -> None:
    axes.set_title("Precision-recall")
    axes.set_xlabel("recall (share of grooming flagged)")
    axes.set_ylabel("precision (share of flags that are grooming)")
    axes.set_xlim(0.0, 1.0)
    axes.set_ylim(0.0, 1.02)
    axes.grid(visible=True, alpha=0.3)
    curve = report.pr_curve
    if curve is None:
        _no_data(axes, "undefined: needs both grooming and normal conversations")
        return
    label = "model" if report.pr_auc is None else f"model (AP = {report.pr_auc:.3f})"
    axes.plot(curve.recall, curve.precision, drawstyle="steps-post", color="black", label=label)
    if report.prevalence is not None:
        axes.axhline(report.prevalence, color="grey", linestyle=":", label="chance (prevalence)")
    if report.precision is not None and report.recall is not None:
        axes.plot(
            [report.recall],
            [report.precision],
            marker="o",
            markersize=9,
            color=GROOMING_COLOUR,
            linestyle="none",
            label=f"threshold {report.threshold:g}",
        )
    axes.legend(loc="lower left")


def _draw_calibration(axes: Axes, report: EvaluationReport) -> None:
    axes.set_title("Calibration (reliability)")
    axes.set_xlabel("mean score in bin")
    axes.set_ylabel("fraction grooming in bin")
    # A little room beyond [0, 1] so that points on the edges are not cut in half.
    axes.set_xlim(-0.02, 1.02)
    axes.set_ylim(-0.02, 1.02)
    axes.set_aspect("equal")
    axes.grid(visible=True, alpha=0.3)
    axes.plot([0.0, 1.0], [0.0, 1.0], color="grey", linestyle="--", label="perfectly calibrated")
    # Empty bins have no mean score and no fraction; they are left out of the curve.
    points = [
        (b.mean_score, b.fraction_positive)
        for b in report.calibration_bins
        if b.mean_score is not None and b.fraction_positive is not None
    ]
    if not points:
        _no_data(axes, "no conversations")
        axes.legend(loc="upper left")
        return
    label = "model" if report.ece is None else f"model (ECE = {report.ece:.3f})"
    axes.plot(
        [mean for mean, _ in points],
        [fraction for _, fraction in points],
        marker="o",
        color="black",
        label=label,
    )
    axes.legend(loc="upper left")


def _draw_histograms(axes: Axes, report: EvaluationReport) -> None:
    histogram = report.score_histogram
    axes.set_title("Scores by label")
    axes.set_xlabel("score")
    axes.set_xlim(0.0, 1.0)
    drawn = False
    for counts, colour, name in (
        (histogram.negative, NORMAL_COLOUR, "normal"),
        (histogram.positive, GROOMING_COLOUR, "grooming"),
    ):
        if any(counts):
            axes.stairs(
                counts, histogram.bin_edges, color=colour, fill=True, alpha=0.45, label=name
            )
            drawn = True
    axes.axvline(
        report.threshold, color="black", linestyle="--", label=f"threshold {report.threshold:g}"
    )
    if drawn:
        # Empty bins would be log(0); "clip" draws them at the bottom instead of warning.
        axes.set_yscale("log", nonpositive="clip")
        axes.set_ylabel("conversations (log scale)")
        axes.set_ylim(bottom=0.8)
    else:
        axes.set_ylabel("conversations")
        _no_data(axes, "no conversations")
    axes.legend(loc="upper center")
