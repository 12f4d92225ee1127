"""Scoring and evaluation runs as both CLIs present them (engine ``score``/``evaluate`` and
``vigil-portal models evaluate``)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import IO

from rich.console import Console

from scoring_engine.cli.common import InputErrorPrinter, err_console, fail, progress_counter
from scoring_engine.conversation import Conversation
from scoring_engine.errors import ExitCode
from scoring_engine.evaluation import EvaluationAccumulator, format_report, plot_report
from scoring_engine.formats import InputFormatError
from scoring_engine.model.scorer import ConversationScore, GroomingModel
from scoring_engine.runner import RunSummary, ScoringRun, write_scores

console = Console()


def summary_line(summary: RunSummary) -> str:
    return (
        f"{summary.read:,} conversations read, {summary.scored:,} scored, "
        f"{summary.flagged:,} flagged, {summary.rejected:,} rejected; "
        f"{summary.messages:,} messages in {summary.seconds:.1f} s "
        f"({summary.messages_per_second:,.0f} messages/s)"
    )


def _scoring_run(
    model: GroomingModel,
    bundle: str,
    paths: list[Path],
    *,
    fmt: str,
    strict: bool,
    threshold: float | None,
) -> ScoringRun:
    """A run whose bad records are printed as ``FILE:LINE: field: reason``."""
    return ScoringRun(
        model=model,
        paths=paths,
        fmt=fmt,
        strict=strict,
        threshold=threshold,
        bundle=bundle,
        on_error=InputErrorPrinter(),
    )


def run_scoring(
    model: GroomingModel,
    bundle: str,
    inputs: list[Path],
    *,
    fmt: str,
    strict: bool,
    threshold: float | None,
    out: Path | None,
    only_flagged: bool,
    on_scored: Callable[[Conversation, ConversationScore], None] | None = None,
) -> RunSummary:
    """Score inputs to ``out`` (stdout when None); the summary goes to stderr.

    ``on_scored`` sees every conversation with its score as it is written (usage counts,
    the review queue).
    """
    run = _scoring_run(model, bundle, inputs, fmt=fmt, strict=strict, threshold=threshold)
    run.on_scored = on_scored
    sink = out.open("w", encoding="utf-8") if out is not None else nullcontext(sys.stdout)
    try:
        with sink as handle, progress_counter("scoring") as update:
            run.on_progress = update
            write_scores(run.scores(), handle, only_flagged=only_flagged)
    except InputFormatError as error:
        fail(str(error.error), ExitCode.BAD_INPUT)
    err_console.print(summary_line(run.summary))
    return run.summary


def run_evaluation(
    model: GroomingModel,
    bundle: str,
    labeled: list[Path],
    *,
    fmt: str,
    strict: bool,
    threshold: float | None,
    as_json: bool,
    plot: Path | None,
    scores_out: Path | None = None,
) -> None:
    """Score labelled inputs and print the metrics (table or JSON), optionally plotting."""
    run = _scoring_run(model, bundle, labeled, fmt=fmt, strict=strict, threshold=threshold)
    accumulator = EvaluationAccumulator()
    sink = scores_out.open("w", encoding="utf-8") if scores_out is not None else nullcontext()
    try:
        with sink as handle, progress_counter("scoring") as update:
            run.on_progress = update
            out: IO[str] | None = handle
            write_scores(run.scores(), out, accumulator=accumulator)
    except InputFormatError as error:
        fail(str(error.error), ExitCode.BAD_INPUT)
    report = accumulator.report(model.recommended_threshold if threshold is None else threshold)
    if plot is not None:
        plot_report(report, plot, title=f"{bundle}: {', '.join(p.name for p in labeled)}")
    summary = run.summary
    if as_json:
        payload = {"bundle": bundle, "summary": summary.to_dict(), **report.to_dict()}
        console.print_json(json.dumps(payload))
    else:
        console.print(format_report(report))
        err_console.print(summary_line(summary))
    unlabelled = summary.scored - len(accumulator)
    if unlabelled:
        err_console.print(f"{unlabelled:,} conversations had no label and are not in the metrics")
