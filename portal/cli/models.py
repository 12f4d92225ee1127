"""``vigil-portal models``: train a model, retrain it with feedback, evaluate it before it
is published."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from sqlalchemy.exc import SQLAlchemyError

from portal.cli._common import cli_actor
from portal.db import session_scope
from portal.errors import PortalError
from portal.events.service import record_event
from portal.events.tags import EventTag
from portal.training.card import render_model_card
from portal.training.comparison import DEFAULT_TOLERANCE, compare_on_evaluation_set
from portal.training.pipeline import (
    TrainingConfig,
    TrainingData,
    cut_windows,
    data_digest,
    train_model,
)
from portal.training.retrain import (
    FeedbackSet,
    check_training_data,
    config_from_base,
    retrain_with_feedback,
)
from scoring_engine.cli.common import (
    InputErrorPrinter,
    check_inputs,
    fail,
    progress_counter,
    progress_steps,
    warn,
)
from scoring_engine.cli.reporting import run_evaluation
from scoring_engine.conversation import Conversation
from scoring_engine.errors import ExitCode, VigilError
from scoring_engine.formats import FORMATS, InputFormatError, ReadStats, read_conversations
from scoring_engine.model.directory import load_model_dir, read_manifest, write_model_dir
from scoring_engine.model.vectors import VectorFormatError

app = typer.Typer(help="Train and evaluate models.", no_args_is_help=True)
DEFAULTS = TrainingConfig()
console = Console()

FormatOption = Annotated[str, typer.Option("--format", help=f"Input format: {', '.join(FORMATS)}.")]
StrictOption = Annotated[
    bool, typer.Option("--strict", help="Stop at the first bad record (exit 2).")
]


@app.command()
def train(
    data: Annotated[
        list[Path], typer.Option("--data", help="Labelled conversations (repeatable).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Model directory to write.")],
    name: Annotated[str, typer.Option(help="Model name, used in bundle names.")] = "vigil",
    fmt: FormatOption = "auto",
    strict: StrictOption = False,
    c: Annotated[float, typer.Option("--C", help="Inverse regularisation strength.")] = DEFAULTS.C,
    folds: Annotated[
        int, typer.Option(help="Cross-validation folds (grouped by case).")
    ] = DEFAULTS.folds,
    min_cases: Annotated[
        int, typer.Option(help="Terms need this many distinct grooming cases to get a weight.")
    ] = DEFAULTS.min_positive_groups,
    max_source_flag_rate: Annotated[
        float, typer.Option(help="Operating point: highest flag rate of any normal source.")
    ] = DEFAULTS.max_source_flag_rate,
    max_unseen_source_flag_rate: Annotated[
        float,
        typer.Option(help="Operating point: highest flag rate of a source left out of training."),
    ] = DEFAULTS.max_unseen_source_flag_rate,
    leave_one_source_out: Annotated[
        bool, typer.Option(help="Also measure each normal source left out of training.")
    ] = True,
    windows_from: Annotated[
        list[Path] | None,
        typer.Option(
            "--windows-from",
            help="Whole labelled transcripts cut into extra training windows (fitted on, "
            "never measured on; keep their `case` ids consistent with --data).",
        ),
    ] = None,
    windows_per_conversation: Annotated[
        int, typer.Option(help="Windows cut from each --windows-from transcript.")
    ] = DEFAULTS.windows_per_conversation,
    window_weight: Annotated[
        float, typer.Option(help="Training weight of each extra window.")
    ] = DEFAULTS.window_weight,
) -> None:
    """Train a model from labelled conversations; write model.skops, manifest, card, metrics."""
    windows_from = windows_from or []
    check_inputs([*data, *windows_from])
    config = TrainingConfig(
        C=c,
        folds=folds,
        min_positive_groups=min_cases,
        max_source_flag_rate=max_source_flag_rate,
        max_unseen_source_flag_rate=max_unseen_source_flag_rate,
        leave_one_source_out=leave_one_source_out,
        windows_per_conversation=windows_per_conversation,
        window_weight=window_weight,
        name=name,
    )
    conversations, extra, stats = _read_training_files(
        data, windows_from, windows_per_conversation, fmt, strict=strict
    )
    with progress_steps() as progress:
        training_data = TrainingData.from_conversations(
            conversations, data_digest([*data, *windows_from]), progress, fit_only=extra
        )
        del conversations, extra
        try:
            result = train_model(training_data, config, progress)
        except ValueError as error:
            fail(str(error), ExitCode.BAD_INPUT)
    result.manifest["training"]["files"] = _file_names(data, windows_from)
    card = render_model_card(result.manifest, result.metrics)
    write_model_dir(out, result.model, result.manifest, card, result.metrics)
    headline = result.manifest["metrics"]
    console.print(
        f"trained on {result.manifest['training']['conversations']:,} conversations "
        f"({result.manifest['training']['grooming']:,} grooming) and "
        f"{result.manifest['training']['extra_windows']:,} extra windows; "
        f"{stats.rejected:,} rejected records"
    )
    console.print(
        f"cross-validated: recall {headline['recall_at_fpr_0.01']:.3f} at 1% FPR, "
        f"{headline['recall_at_fpr_0.001']:.3f} at 0.1% FPR, ECE {headline['ece']:.3f}; "
        f"threshold {result.manifest['recommended_threshold']}"
    )
    console.print(f"wrote {out}")


def _read_training_files(
    data: list[Path],
    windows_from: list[Path],
    windows_per_conversation: int,
    fmt: str,
    *,
    strict: bool,
) -> tuple[list[Conversation], list[Conversation], ReadStats]:
    """The labelled conversations of ``--data``, and the extra windows cut from the
    ``--windows-from`` transcripts to the normal conversations' lengths."""
    stats = ReadStats()
    conversations = _read_labelled(data, fmt, strict=strict, stats=stats)
    transcripts = _read_labelled(windows_from, fmt, strict=strict, stats=stats)
    extra = cut_windows(
        transcripts,
        [len(c.messages) for c in conversations if c.label == "normal"],
        windows_per_conversation,
    )
    return conversations, extra, stats


def _read_labelled(
    paths: list[Path], fmt: str, *, strict: bool, stats: ReadStats
) -> list[Conversation]:
    """Labelled conversations of the files; bad records are reported, unlabelled ones counted."""
    conversations: list[Conversation] = []
    unlabelled = 0
    try:
        with progress_counter("reading") as update:
            for conversation in read_conversations(
                paths, fmt, strict=strict, on_error=InputErrorPrinter(), stats=stats
            ):
                if conversation.label is None:
                    unlabelled += 1
                    continue
                conversations.append(conversation)
                if len(conversations) % 1000 == 0:
                    update(len(conversations), 0)
    except InputFormatError as error:
        fail(str(error.error), ExitCode.BAD_INPUT)
    if unlabelled:
        warn(f"{unlabelled:,} conversations without a label were left out")
    return conversations


@app.command()
def retrain(
    base: Annotated[
        Path,
        typer.Option("--base", help="The model directory to retrain (its manifest is the recipe)."),
    ],
    out: Annotated[Path, typer.Option("--out", help="Candidate model directory to write.")],
    data: Annotated[
        list[Path] | None,
        typer.Option(
            "--data",
            help="The base model's labelled conversations, as given to 'models train' "
            "(its manifest keeps only their digest).",
        ),
    ] = None,
    windows_from: Annotated[
        list[Path] | None,
        typer.Option("--windows-from", help="The base model's --windows-from transcripts."),
    ] = None,
    with_feedback: Annotated[
        bool,
        typer.Option("--with-feedback", help="Add the moderators' feedback received (required)."),
    ] = False,
    feedback_weight: Annotated[
        float, typer.Option(help="Training weight of each feedback record.")
    ] = DEFAULTS.feedback_weight,
    eval_paths: Annotated[
        list[Path] | None,
        typer.Option(
            "--eval",
            help="Also compare candidate and base on this fixed labelled evaluation set.",
        ),
    ] = None,
    fmt: FormatOption = "auto",
    strict: StrictOption = False,
) -> None:
    """Train a candidate on the base model's data plus the feedback received.

    The data files must be the base's (digest checked). With no usable feedback nothing
    is written (exit 2). The candidate's manifest and card name the feedback used and
    compare the candidate with its base.
    """
    data, windows_from, eval_paths = data or [], windows_from or [], eval_paths or []
    if not with_feedback:
        fail(
            "retrain needs --with-feedback (to train on the research data alone, use "
            "'vigil-portal models train')",
            ExitCode.BAD_INPUT,
        )
    if out.resolve() == base.resolve():
        fail("--out must not be the --base directory: the base stays as it is", ExitCode.BAD_INPUT)
    try:
        base_manifest = read_manifest(base)
    except VigilError as error:
        fail(str(error), error.exit_code)
    if not data:
        files = (base_manifest.get("training") or {}).get("files")
        named = f" (it was trained on {json.dumps(files)})" if files else ""
        fail(
            f"give the base model's training files with --data (and --windows-from): its "
            f"manifest keeps only their digest, {base_manifest.get('training_data_digest')}"
            f"{named}",
            ExitCode.BAD_INPUT,
        )
    check_inputs([*data, *windows_from, *eval_paths])
    # The feedback service needs the portal's database models; the other commands do not.
    from portal.feedback.service import feedback_examples  # noqa: PLC0415

    digest = data_digest([*data, *windows_from])
    try:
        config = config_from_base(base_manifest, feedback_weight=feedback_weight)
        check_training_data(base_manifest, digest)
        with session_scope() as session:
            feedback = FeedbackSet.collect(feedback_examples(session))
        feedback.require_some()
    except PortalError as error:
        fail(str(error), error.exit_code)
    except VectorFormatError as error:
        # Vectors are validated when engines send them: a bad one here is damage.
        fail(f"a stored feedback vector is unreadable: {error}", ExitCode.UNEXPECTED)
    except SQLAlchemyError as error:
        fail(_database_error(error), ExitCode.UNEXPECTED)
    base_model = None
    if eval_paths:
        try:
            base_model, _ = load_model_dir(base)
        except VigilError as error:
            fail(str(error), error.exit_code)
    summary = feedback.summary(config.feedback_weight)
    console.print(
        f"feedback: {summary['records']:,} records ({summary['grooming']:,} grooming, "
        f"{summary['imminent_threat']:,} imminent threat, {summary['not_grooming']:,} not "
        f"grooming) from {summary['organisations']:,} organisation(s); "
        f"{summary['skipped']:,} skipped"
    )
    for reason, count in sorted(feedback.skipped.items()):
        warn(f"{count:,} feedback records skipped: {reason}")

    conversations, extra, _stats = _read_training_files(
        data, windows_from, config.windows_per_conversation, fmt, strict=strict
    )
    with progress_steps() as progress:
        training_data = TrainingData.from_conversations(
            conversations, digest, progress, fit_only=extra
        )
        del conversations, extra
        try:
            result = retrain_with_feedback(training_data, feedback, base_manifest, config, progress)
        except (ValueError, PortalError) as error:
            fail(str(error), getattr(error, "exit_code", ExitCode.BAD_INPUT))
    result.manifest["training"]["files"] = _file_names(data, windows_from)
    comparisons = result.manifest["comparison"]
    if base_model is not None:
        try:
            on_eval = compare_on_evaluation_set(
                base_model,
                result.model,
                eval_paths,
                base_label=comparisons[0]["base"],
                fmt=fmt,
                strict=strict,
                on_error=InputErrorPrinter(),
            )
        except PortalError as error:
            fail(str(error), error.exit_code)
        comparisons.append(on_eval.to_dict())
    card = render_model_card(result.manifest, result.metrics)
    manifest = write_model_dir(out, result.model, result.manifest, card, result.metrics)
    try:
        _record_retrain(manifest, out, comparisons)
    except SQLAlchemyError as error:
        fail(_database_error(error), ExitCode.UNEXPECTED)
    for comparison in comparisons:
        console.print(f"compared with the base ({comparison['description']}):")
        for name, figures in comparison["metrics"].items():
            console.print(
                f"  {name}: base {_figure(figures['base'])}, "
                f"candidate {_figure(figures['candidate'])}"
            )
    console.print(
        f"wrote {out}; before promoting it, 'vigil-portal bundles promote' compares it with "
        f"the channel's bundle (tolerance {DEFAULT_TOLERANCE:g})"
    )


def _database_error(error: SQLAlchemyError) -> str:
    original = getattr(error, "orig", None) or error
    first_line = (str(original).strip().splitlines() or [type(error).__name__])[0]
    return f"database error: {first_line} (run 'vigil-portal db upgrade' if the schema is old)"


def _record_retrain(manifest: dict[str, Any], out: Path, comparisons: list[Any]) -> None:
    with session_scope() as session:
        record_event(
            session,
            EventTag.MODEL_RETRAINED,
            actor=cli_actor(),
            subject_id=str(manifest.get("name")),
            payload={
                "base": manifest["base"],
                "out": str(out),
                "model_sha256": manifest["model_sha256"],
                "feedback": manifest["feedback"],
                "comparison": comparisons,
            },
        )


def _file_names(data: list[Path], windows_from: list[Path]) -> dict[str, list[str]]:
    """The training files' names (not paths: a manifest ships to adopters), for the next
    retrain's operator."""
    return {"data": [p.name for p in data], "windows_from": [p.name for p in windows_from]}


def _figure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


@app.command()
def evaluate(
    directory: Annotated[Path, typer.Argument(help="Model directory.")],
    labeled: Annotated[list[Path], typer.Argument(help="Labelled conversations.")],
    threshold: Annotated[
        float | None,
        typer.Option(help="Flag at this probability (default: the model's recommendation)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    plot: Annotated[
        Path | None, typer.Option(help="Write PR, calibration and histogram plots (PNG).")
    ] = None,
    scores_out: Annotated[
        Path | None, typer.Option(help="Write one SPEC §3 line per conversation.")
    ] = None,
    fmt: FormatOption = "auto",
    strict: StrictOption = False,
) -> None:
    """Score labelled conversations with a model directory and report its metrics."""
    check_inputs(labeled)
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        fail("--threshold must be between 0 and 1", ExitCode.BAD_INPUT)
    try:
        model, manifest = load_model_dir(directory)
    except VigilError as error:
        fail(str(error), error.exit_code)
    run_evaluation(
        model,
        _bundle_name(manifest),
        labeled,
        fmt=fmt,
        strict=strict,
        threshold=threshold,
        as_json=as_json,
        plot=plot,
        scores_out=scores_out,
    )


def _bundle_name(manifest: dict[str, object]) -> str:
    name = manifest.get("name") or "vigil"
    version = manifest.get("version")
    return f"{name}-{version}" if version else f"{name}-unpublished"
