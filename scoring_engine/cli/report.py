"""``vigil-engine report`` (SPEC §4, §8): usage counts and feedback to the portal.

The rules are in ``scoring_engine.outbox``; docs/feedback.md is the contract. Safe to
repeat: a batch keeps its id until the portal has accepted it.

Exit codes: 0 everything sent; 1 the portal refused some batch (it stays in the outbox
with its error, the others were sent: ``vigil-engine outbox``); 3 license or lease
refused; 5 portal unreachable (everything kept for the next run).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from scoring_engine.cli.common import err_console, fail, plural, warn
from scoring_engine.cli.scoring import HomeOption
from scoring_engine.errors import ExitCode, VigilError
from scoring_engine.home import EngineHome
from scoring_engine.outbox import ReportOutcome, run_report


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[int, int, int], None] | None]:
    """A bar of batches sent on a terminal; nothing otherwise."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    with Progress(
        TextColumn("Sending reports"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("batches, {task.fields[records]:,} records"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        task = progress.add_task("report", total=None, records=0)

        def update(done: int, total: int, records: int) -> None:
            progress.update(task, completed=done, total=total, records=records)

        yield update


def _print_summary(outcome: ReportOutcome) -> None:
    queued, sent, left, policy = outcome.queued, outcome.sent, outcome.pending, outcome.policy
    print(
        f"Queued: {plural(queued.usage_records, 'usage record')}, "
        f"{plural(queued.feedback_records, 'feedback record')} "
        f"({queued.with_text:,} with text) in {plural(queued.batches, 'batch')}."
    )
    if policy.fetched:
        sharing = "on" if policy.text_sharing else "off"
        print(f"Portal policy: text sharing {sharing}, at most {policy.max_records:,} per batch.")
    else:
        print("Portal policy: not available; feedback sent without text.")
    print(
        f"Sent: {plural(sent.sent, 'batch')} accepted, {sent.duplicate:,} already accepted "
        f"before, {len(sent.failed):,} refused; {plural(sent.records, 'record')}."
    )
    print(
        f"Pending: {plural(left.batches, 'batch')} ({plural(left.batch_records, 'record')})"
        " in the outbox."
    )


def report(
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    home: HomeOption = None,
) -> None:
    """Send pending usage counts and moderator feedback to the portal (safe to repeat)."""
    engine_home = EngineHome.resolve(home)
    try:
        with _progress(not as_json) as progress:
            outcome = run_report(engine_home, progress=progress)
    except VigilError as error:
        fail(str(error), error.exit_code)
    if as_json:
        print(json.dumps(outcome.to_dict(), indent=2, sort_keys=True))
    elif outcome.nothing_to_report:
        print("Nothing to report: no usage counts, no new verdicts, no unsent batches.")
    else:
        _print_summary(outcome)
    if outcome.queued.unreadable:
        warn(
            f"{plural(outcome.queued.unreadable, 'reviewed item')} left in the review queue, "
            "not reported: the stored score line or feature vector is damaged"
        )
    if outcome.failure is not None:
        fail(str(outcome.failure), outcome.failure.exit_code)
    failed = outcome.sent.failed
    if failed:
        first = failed[0]
        fail(
            f"the portal refused {plural(len(failed), 'batch')}, kept in the outbox; "
            f"{first.kind} batch {first.batch_id} ({plural(first.records, 'record')}): "
            f"{first.error} (`vigil-engine outbox list`; `outbox requeue ID` once mended)",
            ExitCode.UNEXPECTED,
        )


def register(app: typer.Typer) -> None:
    app.command()(report)
