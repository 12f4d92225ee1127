"""``vigil-engine update`` (SPEC §4): the newest bundle of the license's channel, online.

The rules are in ``scoring_engine.updates`` (the update) and ``scoring_engine.activation``
(the engine's seat); docs/licensing.md ("Online updates") explains them for operators.
"""

from __future__ import annotations

from typing import Annotated

import typer

from scoring_engine import trust
from scoring_engine.cli.common import fail, warn
from scoring_engine.cli.scoring import HomeOption
from scoring_engine.errors import VigilError
from scoring_engine.home import EngineHome
from scoring_engine.trust import isoformat_z
from scoring_engine.updates import INSTALLED, UP_TO_DATE, UpdateOutcome, run_update, update_due


def _lease_line(outcome: UpdateOutcome) -> str:
    record = outcome.seat.record
    verb = "Activated" if outcome.seat.activated_now else "Lease renewed"
    until = isoformat_z(record.lease_expires_at) if record.lease_expires_at else "unknown"
    return (
        f"{verb}: engine {record.engine_id}, activation {record.activation_id}, "
        f"lease until {until}."
    )


def _report(outcome: UpdateOutcome) -> None:
    available = outcome.available
    if outcome.action == INSTALLED and outcome.installed is not None:
        record = outcome.installed.record
        previous = outcome.installed.previous
        print(
            f"Updated to {record.label} (channel {record.channel}), verified against trust "
            f"root version {record.root_version}; sha256 {record.target_hashes['sha256']}."
        )
        print(f"Previous bundle: {previous.label if previous else 'none'}.")
    elif outcome.action == UP_TO_DATE:
        print(f"Up to date: {available.label} is the newest bundle of channel {available.channel}.")
    else:
        current = outcome.current.label if outcome.current else "the installed bundle"
        print(
            f"Up to date: {current} is newer than {available.label}, the current bundle of "
            f"channel {available.channel}; keeping it."
        )
    print(_lease_line(outcome))


def update(
    if_due: Annotated[
        bool,
        typer.Option(
            "--if-due",
            help="Only check if the last successful check is older than the update interval "
            "(config update_interval_hours, default 24): for schedulers.",
        ),
    ] = False,
    home: HomeOption = None,
) -> None:
    """Pull the newest bundle of the license's channel from the portal, verified with TUF."""
    engine_home = EngineHome.resolve(home)
    try:
        if if_due:
            due = update_due(engine_home, trust.clock())
            if not due.due:
                print(due.reason)
                return
        outcome = run_update(engine_home)
    except VigilError as error:
        fail(str(error), error.exit_code)
    for message in outcome.warnings:
        warn(message)
    _report(outcome)


def register(app: typer.Typer) -> None:
    app.command()(update)
