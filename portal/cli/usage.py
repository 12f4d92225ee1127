"""``vigil-portal usage show``: usage and feedback the engines reported (SPEC §5, §8).

Counts only, never text: per organisation, engine, bundle and UTC day the
conversations scored, flagged and reviewed and the verdicts (a table per
organisation and engine, a row per day and bundle); and per
organisation, bundle and verdict the feedback records received (and how many
of them came with text the organisation agreed to share).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any, Final

import typer
from rich import box
from rich.table import Table

from portal.cli._common import console, handle_errors
from portal.db import session_scope
from portal.usage.schemas import VERDICTS
from portal.usage.service import usage_report

if TYPE_CHECKING:
    from portal.usage.service import UsageReport

app = typer.Typer(help="Usage and feedback received from engines.", no_args_is_help=True)


def report_document(report: UsageReport) -> dict[str, Any]:
    return {
        "usage": [
            {
                "organisation": line.organisation,
                "engine_id": line.engine_id,
                "hostname": line.hostname,
                "bundle": line.bundle,
                "day": line.day.isoformat(),
                "scored": line.scored,
                "flagged": line.flagged,
                "reviewed": line.reviewed,
                "verdicts": dict(line.verdicts),
                "score_histogram": list(line.score_histogram),
            }
            for line in report.usage
        ],
        "feedback": [
            {
                "organisation": line.organisation,
                "bundle": line.bundle,
                "verdict": line.verdict,
                "records": line.count,
                "with_text": line.with_text,
            }
            for line in report.feedback
        ],
    }


# Short headers keep a table of eight columns within 80 characters.
_VERDICT_HEADERS: Final = {
    "not_grooming": "not gr.",
    "grooming": "grooming",
    "imminent_threat": "imminent",
}


def _usage_tables(document: dict[str, Any]) -> list[Table]:
    """One table per organisation and engine, a row per day and bundle."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for line in document["usage"]:
        groups.setdefault((line["organisation"], line["engine_id"]), []).append(line)
    tables = []
    for (organisation, engine_id), lines in groups.items():
        hostname = lines[0]["hostname"]
        engine = f"{hostname} ({engine_id})" if hostname else engine_id
        table = Table(
            title=f"Usage of {organisation}, engine {engine}",
            caption="verdicts: not gr. = not_grooming, imminent = imminent_threat",
            box=box.SIMPLE_HEAD,
            show_edge=False,
        )
        table.add_column("day", no_wrap=True)
        table.add_column("bundle", overflow="fold", min_width=12)
        for name in ("scored", "flagged", "reviewed"):
            table.add_column(name, justify="right", no_wrap=True)
        for verdict in VERDICTS:
            table.add_column(_VERDICT_HEADERS[verdict], justify="right", no_wrap=True)
        for line in lines:
            table.add_row(
                line["day"],
                line["bundle"],
                str(line["scored"]),
                str(line["flagged"]),
                str(line["reviewed"]),
                *(str(line["verdicts"][verdict]) for verdict in VERDICTS),
            )
        tables.append(table)
    return tables


def _feedback_table(document: dict[str, Any]) -> Table:
    table = Table(
        title="Feedback received per organisation, bundle and verdict",
        box=box.SIMPLE_HEAD,
        show_edge=False,
    )
    for name in ("organisation", "bundle", "verdict"):
        table.add_column(name)
    table.add_column("records", justify="right")
    table.add_column("with text", justify="right")
    for line in document["feedback"]:
        table.add_row(
            line["organisation"],
            line["bundle"],
            line["verdict"],
            str(line["records"]),
            str(line["with_text"]),
        )
    return table


@app.command()
@handle_errors
def show(
    org: Annotated[
        str | None,
        typer.Option(
            "--org", help="Only this organisation (exit 2 if there is none of that name)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
) -> None:
    """Usage per organisation, engine, bundle and day, and the feedback received.

    With --json, one JSON object:

        {"usage": [{"organisation", "engine_id", "hostname" (or null), "bundle",
                    "day" (YYYY-MM-DD, UTC), "scored", "flagged", "reviewed",
                    "verdicts": {"not_grooming", "grooming", "imminent_threat"},
                    "score_histogram": [20 counts over equal bins of [0, 1]]}, ...],
         "feedback": [{"organisation", "bundle", "verdict",
                       "records", "with_text"}, ...]}

    Usage lines are ordered by organisation, day, engine id and bundle; feedback
    lines by organisation, bundle and verdict. Counts only: no text, no user ids.
    """
    with session_scope() as session:
        document = report_document(usage_report(session, organisation=org))
    if as_json:
        print(json.dumps(document, indent=2))
        return
    if not document["usage"] and not document["feedback"]:
        console.print("no usage or feedback received yet")
        return
    for table in _usage_tables(document):
        console.print(table)
    console.print(_feedback_table(document))
