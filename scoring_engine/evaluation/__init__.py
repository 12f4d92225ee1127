"""Evaluation of scored, labelled conversations: metrics, terminal table and plots."""

from scoring_engine.evaluation.metrics import (
    EvaluationAccumulator,
    EvaluationReport,
    format_report,
)
from scoring_engine.evaluation.plots import plot_evaluation, plot_report

__all__ = [
    "EvaluationAccumulator",
    "EvaluationReport",
    "format_report",
    "plot_evaluation",
    "plot_report",
]
