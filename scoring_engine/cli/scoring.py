"""``vigil-engine score`` and ``vigil-engine evaluate`` (SPEC §4)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scoring_engine.cli.common import check_inputs, err_console, fail, warn
from scoring_engine.errors import ExitCode, VigilError
from scoring_engine.formats import FORMATS
from scoring_engine.home import EngineHome
from scoring_engine.installed import InstalledModel, load_installed_model

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", help="Engine state directory (default: $VIGIL_ENGINE_HOME)."),
]
FormatOption = Annotated[str, typer.Option("--format", help=f"Input format: {', '.join(FORMATS)}.")]
StrictOption = Annotated[
    bool, typer.Option("--strict", help="Stop at the first bad record (exit 2).")
]
ThresholdOption = Annotated[
    float | None,
    typer.Option(help="Flag at this probability (default: config, then the bundle's)."),
]


def _ready(home: Path | None, threshold: float | None) -> tuple[InstalledModel, float | None]:
    """The verified installed model and the threshold to use, or exit with why not."""
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        fail("--threshold must be between 0 and 1", ExitCode.BAD_INPUT)
    engine_home = EngineHome.resolve(home)
    try:
        installed = load_installed_model(engine_home)
        if threshold is None:
            threshold = engine_home.configured_threshold()
    except VigilError as error:
        fail(str(error), error.exit_code)
    # An expired license in its grace period still scores, and says so on every run.
    for message in installed.warnings:
        warn(message)
    return installed, threshold


def score(
    inputs: Annotated[list[Path], typer.Argument(help="Conversation files.")],
    fmt: FormatOption = "auto",
    threshold: ThresholdOption = None,
    out: Annotated[Path | None, typer.Option(help="Write scores here (default: stdout).")] = None,
    only_flagged: Annotated[
        bool, typer.Option("--only-flagged", help="Write only flagged conversations.")
    ] = False,
    strict: StrictOption = False,
    queue: Annotated[
        bool,
        typer.Option(
            "--queue", help="Also put flagged conversations (with their text) in the review queue."
        ),
    ] = False,
    home: HomeOption = None,
) -> None:
    """Score conversations: one JSON line per conversation, in input order.

    Every run counts usage locally (scored, flagged, score histogram per day and bundle);
    ``vigil-engine report`` sends the counts, never any text.
    """
    check_inputs(inputs)
    installed, threshold = _ready(home, threshold)
    engine_home = EngineHome.resolve(home)
    # Imported here: the model stack loads only for the commands that score.
    from scoring_engine.cli.reporting import run_scoring  # noqa: PLC0415
    from scoring_engine.cli.review import local_database_errors, purge_reviewed_text  # noqa: PLC0415
    from scoring_engine.review.intake import ScoreRecorder  # noqa: PLC0415

    recorder = ScoreRecorder(
        engine_home,
        installed.bundle,
        queue=queue,
        source_file=str(inputs[0]) if len(inputs) == 1 else None,
    )
    with local_database_errors(engine_home):
        if queue:
            purge_reviewed_text(engine_home)
        try:
            run_scoring(
                installed.model,
                installed.bundle,
                inputs,
                fmt=fmt,
                strict=strict,
                threshold=threshold,
                out=out,
                only_flagged=only_flagged,
                on_scored=recorder,
            )
        finally:
            # What was scored is counted (and queued) even when the run stopped early.
            recorder.close()
    if queue:
        err_console.print(recorder.counts.summary(), markup=False, soft_wrap=True)


def evaluate(
    labeled: Annotated[list[Path], typer.Argument(help="Labelled conversation files.")],
    threshold: ThresholdOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    plot: Annotated[
        Path | None, typer.Option(help="Write PR, calibration and histogram plots (PNG).")
    ] = None,
    fmt: FormatOption = "auto",
    strict: StrictOption = False,
    home: HomeOption = None,
) -> None:
    """Score labelled conversations and report how well the installed model does on them."""
    check_inputs(labeled)
    installed, threshold = _ready(home, threshold)
    from scoring_engine.cli.reporting import run_evaluation  # noqa: PLC0415

    run_evaluation(
        installed.model,
        installed.bundle,
        labeled,
        fmt=fmt,
        strict=strict,
        threshold=threshold,
        as_json=as_json,
        plot=plot,
    )


def register(app: typer.Typer) -> None:
    app.command()(score)
    app.command()(evaluate)
