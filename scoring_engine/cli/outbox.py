"""``vigil-engine outbox list|requeue|discard``: the report batches not yet accepted, and
what to do with one the portal refused (the rules: ``scoring_engine.refused``).

Exit codes: 0 done; 2 no such batch, or not one the command applies to (the message says
which command does); 1 the local database could not be read or written.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from scoring_engine import refused
from scoring_engine.cli.common import fail, initialised_home, plural
from scoring_engine.cli.review import local_database_errors
from scoring_engine.cli.scoring import HomeOption
from scoring_engine.errors import ExitCode

console = Console(soft_wrap=True, highlight=False)
outbox_app = typer.Typer(
    name="outbox",
    help="Report batches not yet accepted by the portal: list, requeue or discard refused ones.",
    no_args_is_help=True,
)

BatchArgument = Annotated[str, typer.Argument(help="The batch id (`vigil-engine outbox list`).")]


@outbox_app.command("list")
def list_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print the batches as JSON.")] = False,
    home: HomeOption = None,
) -> None:
    """List the batches waiting to be sent, oldest first, with the portal's refusals."""
    engine_home = initialised_home(home)
    with local_database_errors(engine_home):
        batches = refused.unsent(engine_home)
    if as_json:
        print(json.dumps([batch.to_dict() for batch in batches], indent=2))
        return
    if not batches:
        console.print("The outbox is empty: every batch was accepted.")
        return
    table = Table(title=f"Outbox: {plural(len(batches), 'unsent batch')}")
    table.add_column("batch id", no_wrap=True)  # whole, to be copied
    table.add_column("kind")
    table.add_column("records", justify="right")
    table.add_column("tries", justify="right")
    table.add_column("refused")  # the portal's status (the created time is in --json)
    for batch in batches:
        table.add_row(
            batch.batch_id,
            batch.kind,
            f"{batch.records:,}",
            str(batch.attempts),
            Text(str(batch.refused_status), "bold red") if batch.refused else Text("-"),
        )
    console.print(table)
    # The portal's last answer, or why it could not be reached: text, never rich markup.
    for batch in batches:
        if batch.last_error:
            console.print(f"{batch.batch_id}: {batch.last_error}", markup=False, style="dim")
    if any(batch.refused for batch in batches):
        console.print(
            "A refused batch is sent again by every `report`; once its cause is mended, "
            "`vigil-engine outbox requeue ID` rebuilds it, `discard ID` drops it.",
            style="dim",
            markup=False,
        )


@outbox_app.command("requeue")
def requeue_command(batch_id: BatchArgument, home: HomeOption = None) -> None:
    """Put a refused batch's records back, for the next `report` to send in new batches."""
    engine_home = initialised_home(home)
    with local_database_errors(engine_home):
        outcome = refused.requeue(engine_home, batch_id)
    batch = outcome.batch
    if batch.kind == "usage":
        what = f"the counts of {plural(outcome.usage_rows, 'day')} added back"
    else:
        what = f"{plural(outcome.feedback_items, 'reviewed item')} to be queued again"
        if outcome.feedback_missing:
            what += f" ({outcome.feedback_missing:,} no longer in the review queue)"
    console.print(
        f"Requeued {batch.kind} batch {batch.batch_id}: {what}. "
        "`vigil-engine report` sends them in new batches.",
        markup=False,
    )


@outbox_app.command("discard")
def discard_command(
    batch_id: BatchArgument,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    home: HomeOption = None,
) -> None:
    """Delete a refused batch for good: its counts and verdicts are never reported."""
    engine_home = initialised_home(home)
    if not yes and not typer.confirm(
        f"Discard batch {batch_id}? Its records will never reach the portal.", default=False
    ):
        fail("nothing discarded (pass --yes to discard without asking)", ExitCode.BAD_INPUT)
    with local_database_errors(engine_home):
        batch = refused.discard(engine_home, batch_id)
    console.print(
        f"Discarded {batch.kind} batch {batch.batch_id} "
        f"({plural(batch.records, 'record')}, never reported).",
        markup=False,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(outbox_app)
