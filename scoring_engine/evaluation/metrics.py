"""The metrics of `vigil-engine evaluate` and `vigil-portal models evaluate` (SPEC §4, §5).

Definitions (each also stated where it is computed):

- A conversation is *flagged* at a threshold when ``score >= threshold``.
- ``pr_auc`` is average precision, ``sum_k (R_k - R_{k-1}) * P_k`` over the distinct score
  thresholds (as scikit-learn's ``average_precision_score``); ``roc_auc`` is the area under the
  ROC curve with ties counted as half (as ``roc_auc_score``). Both come from one sort.
- ``recall_at_fpr[t]`` is the highest recall among all operating points (flag every conversation
  scoring at least ``c``, for each observed score ``c``, plus "flag nothing") whose false-positive
  rate is at most ``t``; ``threshold_at_fpr[t]`` is the score ``c`` of that operating point (None
  when only "flag nothing" qualifies).
- ``ece`` is the expected calibration error over 10 equal-width score bins,
  ``sum_b (n_b / n) * |mean score_b - fraction grooming_b|``; ``ece_equal_mass`` is the same over
  10 bins of (as nearly as possible) equal size taken in score order.
- ``early_warning`` reads ``flagged_at``, the index of the first message after which the running
  score crossed the *scoring* threshold (§3 ``first_flag_message``), so it describes the threshold
  the conversations were scored with, not necessarily the one passed to `report`.

Undefined values (a rate with a zero denominator, an AUC without both classes) are None in the
report and come with a note saying why; nothing here raises or warns on such input.

The accumulator keeps five compact numeric arrays (about 29 bytes per conversation), so a
million conversations cost about 30 MB and can be streamed through `add` one at a time.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from scoring_engine.usage import HISTOGRAM_BINS

if TYPE_CHECKING:
    from collections.abc import Mapping

    from numpy.typing import NDArray
    from rich.table import Table

FPR_TARGETS: tuple[float, ...] = (0.01, 0.001)
CALIBRATION_BINS = 10
# The PR curve kept in a report for plotting: enough points to draw it, few enough to be cheap.
MAX_CURVE_POINTS = 1000

_NO_SOURCE = -1
_NOT_FLAGGED = -1


def _fpr_key(target: float) -> str:
    return repr(target)


@dataclass(frozen=True, slots=True)
class CalibrationBin:
    lower: float
    upper: float
    count: int
    mean_score: float | None
    fraction_positive: float | None


@dataclass(frozen=True, slots=True)
class ScoreHistogram:
    """Counts of scores in `len(bin_edges) - 1` equal-width bins over [0, 1] (1.0 in the last)."""

    bin_edges: tuple[float, ...]
    positive: tuple[int, ...]
    negative: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class EarlyWarning:
    """How soon grooming conversations are flagged, in messages read (``flagged_at + 1``)."""

    n_positive: int
    n_flagged: int
    fraction_flagged: float | None
    median_messages: float | None
    p90_messages: float | None
    median_fraction_read: float | None
    p90_fraction_read: float | None


@dataclass(frozen=True, slots=True)
class SourceRates:
    """Rates of one data source at the threshold: a normal source's flag rate is its FPR."""

    source: str
    n_normal: int
    flagged_normal: int
    flag_rate: float | None
    n_grooming: int
    flagged_grooming: int
    recall: float | None


@dataclass(frozen=True, slots=True)
class PrCurve:
    """Precision-recall points by increasing threshold (recall falls to 0), thinned for plots."""

    precision: tuple[float, ...]
    recall: tuple[float, ...]


@dataclass(frozen=True)
class EvaluationReport:
    n: int
    n_positive: int
    prevalence: float | None
    pr_auc: float | None
    roc_auc: float | None
    recall_at_fpr: Mapping[str, float | None]
    threshold_at_fpr: Mapping[str, float | None]
    threshold: float
    flagged: int
    true_positives: int
    false_positives: int
    precision: float | None
    recall: float | None
    f1: float | None
    f0_5: float | None
    false_positive_rate: float | None
    ece: float | None
    ece_equal_mass: float | None
    calibration_bins: tuple[CalibrationBin, ...]
    score_histogram: ScoreHistogram
    early_warning: EarlyWarning
    per_source: tuple[SourceRates, ...]
    notes: tuple[str, ...]
    # Only for plotting; left out of to_dict() unless asked for.
    pr_curve: PrCurve | None = field(default=None, repr=False)

    @property
    def n_negative(self) -> int:
        return self.n - self.n_positive

    def to_dict(self, *, include_curves: bool = False) -> dict[str, Any]:
        """A JSON-ready dict: plain floats, ints, strings, lists and dicts; NaN becomes None."""
        out: dict[str, Any] = {
            "n": self.n,
            "n_positive": self.n_positive,
            "n_negative": self.n_negative,
            "prevalence": _clean(self.prevalence),
            "pr_auc": _clean(self.pr_auc),
            "roc_auc": _clean(self.roc_auc),
            "recall_at_fpr": {k: _clean(v) for k, v in self.recall_at_fpr.items()},
            "threshold_at_fpr": {k: _clean(v) for k, v in self.threshold_at_fpr.items()},
            "threshold": _clean(self.threshold),
            "flagged": self.flagged,
            "true_positives": self.true_positives,
            "false_positives": self.false_positives,
            "precision": _clean(self.precision),
            "recall": _clean(self.recall),
            "f1": _clean(self.f1),
            "f0_5": _clean(self.f0_5),
            "false_positive_rate": _clean(self.false_positive_rate),
            "ece": _clean(self.ece),
            "ece_equal_mass": _clean(self.ece_equal_mass),
            "calibration_bins": [
                {
                    "lower": _clean(b.lower),
                    "upper": _clean(b.upper),
                    "count": b.count,
                    "mean_score": _clean(b.mean_score),
                    "fraction_positive": _clean(b.fraction_positive),
                }
                for b in self.calibration_bins
            ],
            "score_histogram": {
                "bin_edges": [_clean(e) for e in self.score_histogram.bin_edges],
                "positive": list(self.score_histogram.positive),
                "negative": list(self.score_histogram.negative),
            },
            "early_warning": {
                "n_positive": self.early_warning.n_positive,
                "n_flagged": self.early_warning.n_flagged,
                "fraction_flagged": _clean(self.early_warning.fraction_flagged),
                "median_messages": _clean(self.early_warning.median_messages),
                "p90_messages": _clean(self.early_warning.p90_messages),
                "median_fraction_read": _clean(self.early_warning.median_fraction_read),
                "p90_fraction_read": _clean(self.early_warning.p90_fraction_read),
            },
            "per_source": {
                s.source: {
                    "n_normal": s.n_normal,
                    "flagged_normal": s.flagged_normal,
                    "flag_rate": _clean(s.flag_rate),
                    "n_grooming": s.n_grooming,
                    "flagged_grooming": s.flagged_grooming,
                    "recall": _clean(s.recall),
                }
                for s in self.per_source
            },
            "notes": list(self.notes),
        }
        if include_curves:
            curve = self.pr_curve
            out["pr_curve"] = (
                None
                if curve is None
                else {
                    "precision": [_clean(p) for p in curve.precision],
                    "recall": [_clean(r) for r in curve.recall],
                }
            )
        return out


def _clean(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _ratio(numerator: float, denominator: float) -> float | None:
    return float(numerator / denominator) if denominator else None


def f_beta(precision: float | None, recall: float | None, beta: float) -> float | None:
    """F-beta = (1 + b^2) P R / (b^2 P + R); 0 when P = R = 0, None when either is undefined."""
    if precision is None or recall is None:
        return None
    b2 = beta * beta
    denominator = b2 * precision + recall
    return (1 + b2) * precision * recall / denominator if denominator else 0.0


@dataclass
class EvaluationAccumulator:
    """Collects (score, label, early-warning, source) per conversation; `report` computes metrics.

    Only numbers are stored; sources are interned as small integers.
    """

    _scores: array[float] = field(default_factory=lambda: array("d"), init=False, repr=False)
    _labels: array[int] = field(default_factory=lambda: array("B"), init=False, repr=False)
    _flagged_at: array[int] = field(default_factory=lambda: array("q"), init=False, repr=False)
    _n_messages: array[int] = field(default_factory=lambda: array("q"), init=False, repr=False)
    _source_ids: array[int] = field(default_factory=lambda: array("i"), init=False, repr=False)
    _source_names: dict[str, int] = field(default_factory=dict, init=False, repr=False)

    def __len__(self) -> int:
        return len(self._scores)

    def add(
        self,
        *,
        score: float,
        label: bool,
        flagged_at: int | None,
        n_messages: int,
        source: str | None,
    ) -> None:
        """Record one scored conversation; `label` is True for grooming."""
        if not 0.0 <= score <= 1.0:  # also rejects NaN
            raise ValueError(f"score must be a probability in [0, 1], got {score!r}")
        if n_messages < 0:
            raise ValueError(f"n_messages must be >= 0, got {n_messages}")
        if flagged_at is not None and not 0 <= flagged_at < n_messages:
            raise ValueError(
                f"flagged_at must index one of the {n_messages} messages, got {flagged_at}"
            )
        if source is None:
            source_id = _NO_SOURCE
        else:
            source_id = self._source_names.setdefault(source, len(self._source_names))
        self._scores.append(score)
        self._labels.append(1 if label else 0)
        self._flagged_at.append(_NOT_FLAGGED if flagged_at is None else flagged_at)
        self._n_messages.append(n_messages)
        self._source_ids.append(source_id)

    def scores_and_labels(self) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
        """Copies of the recorded scores and labels (True = grooming) as numpy arrays."""
        return np.array(self._scores, dtype=np.float64), np.array(self._labels, dtype=np.bool_)

    def report(self, threshold: float) -> EvaluationReport:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
        scores, labels = self.scores_and_labels()
        notes: list[str] = []
        n = int(scores.size)
        n_positive = int(labels.sum())
        n_negative = n - n_positive
        if n == 0:
            notes.append("no conversations: every metric is undefined")
        else:
            if n_positive == 0:
                notes.append(
                    "no grooming conversations: PR-AUC, ROC-AUC, recall, F-scores and"
                    " early warning are undefined"
                )
            if n_negative == 0:
                notes.append(
                    "no normal conversations: ROC-AUC, PR-AUC, false-positive rate and"
                    " recall at FPR are undefined"
                )
        both_classes = n_positive > 0 and n_negative > 0

        flagged = scores >= threshold
        tp = int(np.count_nonzero(flagged & labels))
        fp = int(np.count_nonzero(flagged & ~labels))
        n_flagged = tp + fp
        precision = _ratio(tp, n_flagged)
        recall = _ratio(tp, n_positive)
        if n_positive and n_flagged == 0:
            notes.append(f"nothing scored at or above the threshold {threshold:g}")

        ranking = _Ranking.of(scores, labels) if both_classes else None
        recall_at_fpr: dict[str, float | None] = {}
        threshold_at_fpr: dict[str, float | None] = {}
        for target in FPR_TARGETS:
            rec, thr = ranking.recall_at_fpr(target) if ranking else (None, None)
            recall_at_fpr[_fpr_key(target)] = rec
            threshold_at_fpr[_fpr_key(target)] = thr

        ece, bins = _calibration(scores, labels)
        return EvaluationReport(
            n=n,
            n_positive=n_positive,
            prevalence=_ratio(n_positive, n),
            pr_auc=ranking.average_precision() if ranking else None,
            roc_auc=ranking.roc_auc() if ranking else None,
            recall_at_fpr=recall_at_fpr,
            threshold_at_fpr=threshold_at_fpr,
            threshold=float(threshold),
            flagged=n_flagged,
            true_positives=tp,
            false_positives=fp,
            precision=precision,
            recall=recall,
            f1=f_beta(precision, recall, 1.0),
            f0_5=f_beta(precision, recall, 0.5),
            false_positive_rate=_ratio(fp, n_negative),
            ece=ece,
            ece_equal_mass=_ece_equal_mass(scores, labels),
            calibration_bins=bins,
            score_histogram=_histogram(scores, labels),
            early_warning=self._early_warning(labels),
            per_source=self._per_source(flagged, labels),
            notes=tuple(notes),
            pr_curve=ranking.pr_curve() if ranking else None,
        )

    def _early_warning(self, labels: NDArray[np.bool_]) -> EarlyWarning:
        flagged_at = np.array(self._flagged_at, dtype=np.int64)[labels]
        n_messages = np.array(self._n_messages, dtype=np.int64)[labels]
        ever = flagged_at != _NOT_FLAGGED
        read = (flagged_at[ever] + 1).astype(np.float64)
        fraction_read = read / n_messages[ever]  # add() guarantees n_messages > flagged_at >= 0
        n_positive = int(labels.sum())
        return EarlyWarning(
            n_positive=n_positive,
            n_flagged=int(ever.sum()),
            fraction_flagged=_ratio(int(ever.sum()), n_positive),
            median_messages=_percentile(read, 50),
            p90_messages=_percentile(read, 90),
            median_fraction_read=_percentile(fraction_read, 50),
            p90_fraction_read=_percentile(fraction_read, 90),
        )

    def _per_source(
        self, flagged: NDArray[np.bool_], labels: NDArray[np.bool_]
    ) -> tuple[SourceRates, ...]:
        if not self._source_names:
            return ()
        ids = np.array(self._source_ids, dtype=np.int64)
        known = ids != _NO_SOURCE
        size = len(self._source_names)

        def count(mask: NDArray[np.bool_]) -> NDArray[np.int64]:
            return np.bincount(ids[known & mask], minlength=size)

        n_normal, flagged_normal = count(~labels), count(~labels & flagged)
        n_grooming, flagged_grooming = count(labels), count(labels & flagged)
        return tuple(
            SourceRates(
                source=name,
                n_normal=int(n_normal[i]),
                flagged_normal=int(flagged_normal[i]),
                flag_rate=_ratio(int(flagged_normal[i]), int(n_normal[i])),
                n_grooming=int(n_grooming[i]),
                flagged_grooming=int(flagged_grooming[i]),
                recall=_ratio(int(flagged_grooming[i]), int(n_grooming[i])),
            )
            for name, i in sorted(self._source_names.items())
        )


def _percentile(values: NDArray[np.float64], q: float) -> float | None:
    return float(np.percentile(values, q)) if values.size else None


@dataclass(frozen=True, slots=True)
class _Ranking:
    """Every "flag score >= c" operating point, c running over the distinct scores downwards.

    ``tps[i]`` and ``fps[i]`` count the grooming and normal conversations scoring at least
    ``thresholds[i]``. Needs both classes present.
    """

    thresholds: NDArray[np.float64]
    tps: NDArray[np.int64]
    fps: NDArray[np.int64]

    @classmethod
    def of(cls, scores: NDArray[np.float64], labels: NDArray[np.bool_]) -> _Ranking:
        order = np.argsort(-scores, kind="stable")
        sorted_scores = scores[order]
        sorted_labels = labels[order]
        # The last index of each run of equal scores is where that threshold's point lies.
        last_of_run = np.r_[np.flatnonzero(np.diff(sorted_scores)), sorted_scores.size - 1]
        tps = np.cumsum(sorted_labels, dtype=np.int64)[last_of_run]
        fps = (last_of_run + 1) - tps
        return cls(thresholds=sorted_scores[last_of_run], tps=tps, fps=fps)

    @property
    def recall(self) -> NDArray[np.float64]:
        return self.tps / int(self.tps[-1])

    @property
    def precision(self) -> NDArray[np.float64]:
        return self.tps / (self.tps + self.fps)

    @property
    def false_positive_rate(self) -> NDArray[np.float64]:
        return self.fps / int(self.fps[-1])

    def average_precision(self) -> float:
        """sum_k (R_k - R_{k-1}) * P_k with R_0 = 0."""
        return float(np.sum(np.diff(self.recall, prepend=0.0) * self.precision))

    def roc_auc(self) -> float:
        """Trapezoidal area under (FPR, TPR) from (0, 0); a tie of both classes counts half."""
        fpr = np.r_[0.0, self.false_positive_rate]
        tpr = np.r_[0.0, self.recall]
        return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1])) / 2.0)

    def recall_at_fpr(self, target: float) -> tuple[float, float | None]:
        """The highest recall with FPR <= target, and the threshold that gives it.

        (0.0, None) when only "flag nothing" keeps the false-positive rate low enough.
        """
        allowed = np.flatnonzero(self.false_positive_rate <= target)
        if allowed.size == 0:
            return 0.0, None
        # Recall grows as the threshold falls, so the last allowed point is the best one.
        best = allowed[-1]
        return float(self.recall[best]), float(self.thresholds[best])

    def pr_curve(self) -> PrCurve:
        """As scikit-learn's precision_recall_curve: every threshold from the lowest up, then
        (recall 0, precision 1); thinned to at most MAX_CURVE_POINTS points."""
        precision = np.r_[self.precision[::-1], 1.0]
        recall = np.r_[self.recall[::-1], 0.0]
        if precision.size > MAX_CURVE_POINTS:
            # Keep points spread both along the threshold order and along recall, so that
            # neither the high-precision end nor long flat stretches are lost.
            half = MAX_CURVE_POINTS // 2
            by_index = np.linspace(0, precision.size - 1, half).round().astype(np.int64)
            # recall is non-increasing along the arrays; search it reversed.
            grid = np.linspace(0.0, 1.0, half)
            by_recall = precision.size - 1 - np.searchsorted(recall[::-1], grid)
            keep = np.unique(np.clip(np.r_[by_index, by_recall], 0, precision.size - 1))
            precision, recall = precision[keep], recall[keep]
        return PrCurve(
            precision=tuple(float(p) for p in precision),
            recall=tuple(float(r) for r in recall),
        )


def _bin_index(scores: NDArray[np.float64], n_bins: int) -> NDArray[np.int64]:
    # Bins are [k/n, (k+1)/n); a score of exactly 1.0 belongs to the last bin.
    return np.minimum((scores * n_bins).astype(np.int64), n_bins - 1)


def _calibration(
    scores: NDArray[np.float64], labels: NDArray[np.bool_]
) -> tuple[float | None, tuple[CalibrationBin, ...]]:
    """ECE over equal-width bins: sum_b (n_b / n) * |mean score_b - fraction grooming_b|."""
    n_bins = CALIBRATION_BINS
    index = _bin_index(scores, n_bins)
    counts = np.bincount(index, minlength=n_bins)
    score_sums = np.bincount(index, weights=scores, minlength=n_bins)
    positive_sums = np.bincount(index, weights=labels.astype(np.float64), minlength=n_bins)
    bins = []
    for b in range(n_bins):
        count = int(counts[b])
        bins.append(
            CalibrationBin(
                lower=b / n_bins,
                upper=(b + 1) / n_bins,
                count=count,
                mean_score=_ratio(float(score_sums[b]), count),
                fraction_positive=_ratio(float(positive_sums[b]), count),
            )
        )
    if scores.size == 0:
        return None, tuple(bins)
    # sum_b (n_b / n) * |mean_b - frac_b| == sum_b |score_sum_b - positive_sum_b| / n
    ece = float(np.abs(score_sums - positive_sums).sum() / scores.size)
    return ece, tuple(bins)


def _ece_equal_mass(scores: NDArray[np.float64], labels: NDArray[np.bool_]) -> float | None:
    """ECE over CALIBRATION_BINS bins of equal size (sizes differ by at most one) in score order."""
    if scores.size == 0:
        return None
    order = np.argsort(scores, kind="stable")
    total = 0.0
    for chunk in np.array_split(order, min(CALIBRATION_BINS, scores.size)):
        total += abs(float(scores[chunk].sum()) - float(labels[chunk].sum()))
    return total / scores.size


def _histogram(scores: NDArray[np.float64], labels: NDArray[np.bool_]) -> ScoreHistogram:
    edges = np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1)
    index = _bin_index(scores, HISTOGRAM_BINS)
    positive = np.bincount(index[labels], minlength=HISTOGRAM_BINS)
    negative = np.bincount(index[~labels], minlength=HISTOGRAM_BINS)
    return ScoreHistogram(
        bin_edges=tuple(round(float(e), 10) for e in edges),
        positive=tuple(int(c) for c in positive),
        negative=tuple(int(c) for c in negative),
    )


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def format_report(report: EvaluationReport) -> Table:
    """A rich table of the report for terminals (print it with a rich Console)."""
    from rich.table import Table  # noqa: PLC0415 - rich is only needed when printing

    table = Table(title=f"Evaluation at threshold {report.threshold:g}", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("conversations", f"{report.n}")
    table.add_row("grooming / normal", f"{report.n_positive} / {report.n_negative}")
    table.add_row("prevalence", _fmt(report.prevalence, 4))
    table.add_section()
    table.add_row("PR-AUC (average precision)", _fmt(report.pr_auc))
    table.add_row("ROC-AUC", _fmt(report.roc_auc))
    for key, value in report.recall_at_fpr.items():
        table.add_row(f"recall at FPR <= {float(key):.1%}", _fmt(value))
    table.add_section()
    table.add_row("flagged", f"{report.flagged}")
    table.add_row("precision", _fmt(report.precision))
    table.add_row("recall", _fmt(report.recall))
    table.add_row("F1", _fmt(report.f1))
    table.add_row("F0.5", _fmt(report.f0_5))
    table.add_row("false-positive rate", _fmt(report.false_positive_rate, 4))
    table.add_section()
    table.add_row("ECE (10 equal-width bins)", _fmt(report.ece, 4))
    table.add_row("ECE (10 equal-mass bins)", _fmt(report.ece_equal_mass, 4))
    table.add_section()
    ew = report.early_warning
    table.add_row("grooming ever flagged", _fmt(ew.fraction_flagged))
    table.add_row(
        "messages read before flag (median / p90)",
        f"{_fmt(ew.median_messages, 1)} / {_fmt(ew.p90_messages, 1)}",
    )
    table.add_row(
        "share of conversation read (median / p90)",
        f"{_fmt(ew.median_fraction_read, 2)} / {_fmt(ew.p90_fraction_read, 2)}",
    )
    if report.per_source:
        table.add_section()
        for s in report.per_source:
            parts = []
            if s.n_normal:
                parts.append(f"flag rate {_fmt(s.flag_rate, 4)} ({s.flagged_normal}/{s.n_normal})")
            if s.n_grooming:
                parts.append(f"recall {_fmt(s.recall)} ({s.flagged_grooming}/{s.n_grooming})")
            table.add_row(f"source {s.source}", ", ".join(parts))
    if report.notes:
        table.caption = "; ".join(report.notes)
    return table
