"""``vigil-portal bundles``: publish models as signed bundles, promote them between
channels behind the evaluation gate, and export them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from portal.bundles import service
from portal.bundles.models import Channel
from portal.cli._common import cli_actor, console, handle_errors, warn
from portal.db import session_scope
from portal.errors import InvalidInputError
from portal.repository.service import open_repository
from portal.settings import get_settings
from portal.training.comparison import DEFAULT_TOLERANCE
from scoring_engine.cli.common import InputErrorPrinter
from scoring_engine.formats import FORMATS

app = typer.Typer(help="Publish, list and export model bundles.", no_args_is_help=True)


@app.command()
@handle_errors
def publish(
    model_dir: Annotated[
        Path,
        typer.Argument(
            metavar="DIR",
            help="Model directory from 'vigil-portal models train' "
            "(model.skops, manifest.json, MODEL_CARD.md).",
        ),
    ],
    version: Annotated[
        str, typer.Option("--version", help="Bundle version, e.g. 2026.11.0.", show_default=False)
    ],
    channel: Annotated[Channel, typer.Option("--channel", help="Update channel.")] = Channel.STABLE,
    name: Annotated[
        str | None,
        typer.Option("--name", help="Bundle name (default: the model manifest's name)."),
    ] = None,
) -> None:
    """Sign and publish a model as a bundle in the update repository."""
    settings = get_settings()
    repository = open_repository(settings)
    with session_scope() as session:
        bundle = service.publish_bundle(
            session,
            repository,
            model_dir,
            version=version,
            channel=channel,
            name=name,
            actor=cli_actor(),
        )
    console.print(
        f"published {bundle.label} on {bundle.channel.value}: {bundle.target_path} "
        f"({bundle.length:,} bytes, sha256 {bundle.sha256})"
    )


@app.command()
@handle_errors
def promote(
    version: Annotated[str, typer.Argument(metavar="VERSION", help="A published bundle version.")],
    to: Annotated[Channel, typer.Option("--to", help="Channel to move it to.", show_default=False)],
    eval_paths: Annotated[
        list[Path] | None,
        typer.Option(
            "--eval",
            help="Fixed labelled evaluation set both bundles score (needed unless both were "
            "trained on the same data).",
        ),
    ] = None,
    against: Annotated[
        str | None,
        typer.Option(
            "--against",
            metavar="VERSION",
            help="Compare with this version (default: the channel's current bundle).",
        ),
    ] = None,
    tolerance: Annotated[
        float,
        typer.Option(help="How much lower a gated figure may be (absolute) and still pass."),
    ] = DEFAULT_TOLERANCE,
    force: Annotated[
        bool, typer.Option("--force", help="Promote even if the gate finds it worse.")
    ] = False,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why it is forced (recorded in the audit trail).")
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", help=f"Evaluation set format: {', '.join(FORMATS)}.")
    ] = "auto",
    strict: Annotated[
        bool, typer.Option("--strict", help="Stop at the first bad evaluation record (exit 2).")
    ] = False,
) -> None:
    """Move a published bundle to another channel (beta -> stable) after its evaluation gate.

    Refused with exit 4, the channel unchanged, when the bundle is worse than the channel's
    current one by more than the tolerance on PR-AUC or recall at 1% or 0.1% FPR.
    """
    if force and not (reason and reason.strip()):
        raise InvalidInputError("--force needs --reason TEXT: the audit trail records why")
    if reason is not None and not force:
        raise InvalidInputError("--reason is only for --force")
    settings = get_settings()
    repository = open_repository(settings)
    with session_scope() as session:
        gate = service.evaluate_promotion(
            session,
            repository,
            version,
            channel=to,
            eval_paths=eval_paths or [],
            against=against,
            tolerance=tolerance,
            fmt=fmt,
            strict=strict,
            on_error=InputErrorPrinter(),
        )
        label = gate.candidate.label
        if gate.comparison is None:
            console.print(f"{to.value} has no bundle yet: nothing to compare {label} with")
        else:
            console.print(f"compared on {gate.comparison.description}:")
            for line in gate.comparison.lines(tolerance):
                console.print(f"  {line}")
        if gate.worse and force:
            warn(f"forced past the gate: {reason}")
        bundle = service.promote_bundle(
            session, repository, gate, actor=cli_actor(), force_reason=reason if force else None
        )
        replaced = f", replacing {gate.replaces}" if gate.replaces else ""
        console.print(f"promoted {bundle.label} to {to.value}{replaced}: {bundle.target_path}")


@app.command()
@handle_errors
def export(
    version: Annotated[str, typer.Argument(metavar="VERSION", help="A published bundle version.")],
    out: Annotated[Path, typer.Option("--out", help="Export file to write.", show_default=False)],
) -> None:
    """Write a self-contained bundle file for 'vigil-engine install'."""
    if not out.parent.is_dir():
        raise InvalidInputError(f"{out.parent} is not a directory")
    settings = get_settings()
    repository = open_repository(settings)
    with session_scope() as session:
        bundle = service.export_bundle(session, repository, version, out, actor=cli_actor())
    console.print(
        f"exported {bundle.label} to {out}; its metadata verifies for "
        f"{settings.timestamp_expiry_days} day(s)"
    )


@app.command("list")
@handle_errors
def list_() -> None:
    """List published bundles, newest first."""
    with session_scope() as session:
        bundles = service.list_bundles(session)
        rows = [
            (b.label, b.channel.value, b.published_at.isoformat()[:16], b.published_by)
            for b in bundles
        ]
    table = Table("bundle", "channel", "published", "by")
    for row in rows:
        table.add_row(*row)
    console.print(table)
