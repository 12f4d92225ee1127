"""Comparing a candidate model with the model it would replace.

Used twice: ``models retrain`` records in the candidate's manifest and card how it compares
with its base, and ``bundles promote`` refuses to move a candidate onto a channel when it
is worse than the channel's current bundle (the promotion gate).

Rules:

- Both models are measured on the same conversations: either a fixed labelled evaluation
  set, read once and scored by both, or (for a candidate retrained from its base on the
  same training data, digest checked) the cross-validation figures both recorded on the
  same grouped folds.
- The gated figures are PR-AUC and recall at 1% and 0.1% false-positive rate
  (:data:`GATED_METRICS`). A candidate is *worse* on a figure when it is below the base's
  by more than the tolerance (an absolute difference, default 0.01).
- Recall at 0.1% FPR is gated only on at least :data:`MIN_NORMALS_FOR_STRICT_FPR` normal
  conversations: on fewer, 0.1% of them is less than one conversation and the figure is
  shown, not judged.
- An evaluation set without both grooming and normal conversations cannot rank anything:
  it is refused as bad input rather than waved through.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any, Final

from portal.errors import InvalidInputError
from scoring_engine.errors import VigilError
from scoring_engine.evaluation import EvaluationAccumulator, EvaluationReport
from scoring_engine.formats import read_conversations

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from pathlib import Path

    from scoring_engine.formats.base import RecordError
    from scoring_engine.model.scorer import GroomingModel

GATED_METRICS: Final = ("pr_auc", "recall_at_fpr_0.01", "recall_at_fpr_0.001")
METRIC_LABELS: Final = {
    "pr_auc": "PR-AUC",
    "recall_at_fpr_0.01": "recall at 1% FPR",
    "recall_at_fpr_0.001": "recall at 0.1% FPR",
}
MIN_NORMALS_FOR_STRICT_FPR: Final = 1000
DEFAULT_TOLERANCE: Final = 0.01
SCORING_CHUNK: Final = 1000


@dataclass(frozen=True)
class MetricComparison:
    name: str
    base: float | None
    candidate: float | None
    gated: bool = True

    @property
    def label(self) -> str:
        return METRIC_LABELS.get(self.name, self.name)

    @property
    def delta(self) -> float | None:
        if self.base is None or self.candidate is None:
            return None
        return self.candidate - self.base

    def worse(self, tolerance: float) -> bool:
        """Below the base by more than ``tolerance`` (only for gated figures)."""
        delta = self.delta
        return self.gated and delta is not None and delta < -tolerance

    def to_dict(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "candidate": self.candidate,
            "delta": None if self.delta is None else round(self.delta, 6),
            "gated": self.gated,
        }


@dataclass(frozen=True)
class Comparison:
    """The gated figures of a base and a candidate, measured on the same conversations."""

    scheme: str  # "evaluation" (a labelled set scored by both) or "cross-validation"
    description: str  # what the conversations were, for people
    base_label: str
    candidate_label: str
    n: int
    n_positive: int
    metrics: tuple[MetricComparison, ...]

    @property
    def n_negative(self) -> int:
        return self.n - self.n_positive

    def regressions(self, tolerance: float) -> list[MetricComparison]:
        return [m for m in self.metrics if m.worse(tolerance)]

    def to_dict(self, tolerance: float | None = None) -> dict[str, Any]:
        document: dict[str, Any] = {
            "scheme": self.scheme,
            "description": self.description,
            "base": self.base_label,
            "candidate": self.candidate_label,
            "n": self.n,
            "n_positive": self.n_positive,
            "metrics": {m.name: m.to_dict() for m in self.metrics},
        }
        if tolerance is not None:
            document["tolerance"] = tolerance
            document["worse"] = [m.name for m in self.regressions(tolerance)]
        return document

    def lines(self, tolerance: float | None = None) -> list[str]:
        """One line per figure: ``PR-AUC: base 0.912, candidate 0.934 (+0.022)``."""
        out = []
        for m in self.metrics:
            delta = signed(m.delta)
            verdict = ""
            if not m.gated:
                verdict = (
                    f" (not gated: fewer than {MIN_NORMALS_FOR_STRICT_FPR:,} normal conversations)"
                )
            elif tolerance is not None and m.worse(tolerance):
                verdict = f" WORSE by more than {tolerance:g}"
            out.append(
                f"{m.label}: {self.base_label} {_fmt(m.base)}, "
                f"{self.candidate_label} {_fmt(m.candidate)} ({delta}){verdict}"
            )
        return out


def signed(value: float | None) -> str:
    """``+0.012``; a difference that rounds to zero is ``+0.000``, never ``-0.000``."""
    return "n/a" if value is None else f"{round(value, 3) + 0.0:+.3f}"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def headline_of(report: Mapping[str, Any]) -> dict[str, float | None]:
    """The gated figures of an evaluation report (``EvaluationReport.to_dict()``)."""
    recall = report.get("recall_at_fpr") or {}
    return {
        "pr_auc": report.get("pr_auc"),
        "recall_at_fpr_0.01": recall.get("0.01"),
        "recall_at_fpr_0.001": recall.get("0.001"),
    }


def compare_headlines(
    base: Mapping[str, Any],
    candidate: Mapping[str, Any],
    *,
    scheme: str,
    description: str,
    n: int,
    n_positive: int,
    base_label: str = "base",
    candidate_label: str = "candidate",
) -> Comparison:
    """Compare two sets of headline figures (keys of :data:`GATED_METRICS`)."""
    strict_fpr = n - n_positive >= MIN_NORMALS_FOR_STRICT_FPR
    metrics = tuple(
        MetricComparison(
            name=name,
            base=_number(base.get(name)),
            candidate=_number(candidate.get(name)),
            gated=strict_fpr or name != "recall_at_fpr_0.001",
        )
        for name in GATED_METRICS
    )
    return Comparison(
        scheme=scheme,
        description=description,
        base_label=base_label,
        candidate_label=candidate_label,
        n=n,
        n_positive=n_positive,
        metrics=metrics,
    )


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def evaluate_models(
    models: Mapping[str, GroomingModel],
    paths: Sequence[Path],
    *,
    fmt: str = "auto",
    strict: bool = False,
    on_error: Callable[[RecordError], None] | None = None,
) -> dict[str, EvaluationReport]:
    """Each model's report on the labelled conversations of ``paths``, read once.

    Unlabelled conversations are left out. Raises InvalidInputError for unreadable files,
    a bad record under ``strict``, or a set without both labels.
    """
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise InvalidInputError(f"no such evaluation file: {', '.join(missing)}")
    accumulators = {name: EvaluationAccumulator() for name in models}
    try:
        labelled = (
            c
            for c in read_conversations(paths, fmt, strict=strict, on_error=on_error)
            if c.label is not None
        )
        while chunk := list(islice(labelled, SCORING_CHUNK)):
            for name, model in models.items():
                accumulator = accumulators[name]
                for conversation, result in zip(chunk, model.score_stream(chunk), strict=True):
                    accumulator.add(
                        score=result.score,
                        label=conversation.label == "grooming",
                        flagged_at=result.first_flag_message,
                        n_messages=len(conversation.messages),
                        source=conversation.source,
                    )
    except VigilError as error:
        raise InvalidInputError(str(error)) from None
    reports = {
        name: accumulator.report(models[name].recommended_threshold)
        for name, accumulator in accumulators.items()
    }
    first = next(iter(reports.values()), None)
    if first is None or first.n_positive == 0 or first.n_negative == 0:
        names = ", ".join(p.name for p in paths)
        raise InvalidInputError(
            f"the evaluation set ({names}) needs both grooming and normal labelled conversations"
        )
    return reports


def compare_on_evaluation_set(
    base: GroomingModel,
    candidate: GroomingModel,
    paths: Sequence[Path],
    *,
    base_label: str = "base",
    candidate_label: str = "candidate",
    fmt: str = "auto",
    strict: bool = False,
    on_error: Callable[[RecordError], None] | None = None,
) -> Comparison:
    """Score ``paths`` with both models and compare their gated figures."""
    reports = evaluate_models(
        {"base": base, "candidate": candidate}, paths, fmt=fmt, strict=strict, on_error=on_error
    )
    report = reports["candidate"]
    return compare_headlines(
        headline_of(reports["base"].to_dict()),
        headline_of(report.to_dict()),
        scheme="evaluation",
        description=f"{', '.join(p.name for p in paths)}: {report.n:,} labelled conversations, "
        f"{report.n_positive:,} grooming",
        n=report.n,
        n_positive=report.n_positive,
        base_label=base_label,
        candidate_label=candidate_label,
    )
