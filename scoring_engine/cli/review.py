"""``vigil-engine review``: the moderators' queue (SPEC §4).

``list`` the flagged conversations waiting for a verdict, ``show`` one with its evidence
highlighted, record a ``verdict``, ``export`` a CyberTipline-style report draft of a
conversation judged grooming or an imminent threat, and ``purge`` the text of reviewed
conversations past the retention period (``review_retention_days``, default 90). Every
``review`` command and ``score --queue`` applies the retention first.

The queue is local (``$VIGIL_ENGINE_HOME/local.sqlite3``, mode 0600): the text of a
conversation leaves this machine only as a draft a moderator exports, or with its feedback
when the organisation enabled text sharing in the portal and the moderator confirmed it
for that conversation (``verdict --share-text``).
"""

from __future__ import annotations

import getpass
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Final

import typer
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from scoring_engine.cli.common import fail, initialised_home
from scoring_engine.cli.scoring import HomeOption
from scoring_engine.errors import ExitCode, VigilError
from scoring_engine.home import EngineHome
from scoring_engine.localdb import connect, database_path
from scoring_engine.review import Verdict
from scoring_engine.review.queue import (
    ReviewItem,
    find_item,
    isoformat_z,
    list_items,
    purge_expired_text,
    record_verdict,
    storable,
)

console = Console(soft_wrap=True, highlight=False)
review_app = typer.Typer(
    name="review",
    help="The moderators' review queue: list, show, verdict, export, purge.",
    no_args_is_help=True,
)

ID_SHOWN: Final = 8
BAR_WIDTH: Final = 20
MAX_NOTE: Final = 10_000
EXPORT_FORMATS: Final = ("cybertip",)
VERDICTS: Final = ", ".join(v.value for v in Verdict)
VERDICT_STYLE: Final = {
    Verdict.NOT_GROOMING: "green",
    Verdict.GROOMING: "bold red",
    Verdict.IMMINENT_THREAT: "bold white on red",
}


def utc_now() -> datetime:
    return datetime.now(UTC)


#### Shared with ``score --queue`` ####


@contextmanager
def local_database_errors(home: EngineHome) -> Iterator[None]:
    """A database that cannot be opened or written is one line and exit 1, not a traceback."""
    try:
        yield
    except sqlite3.Error as error:
        fail(f"local database {database_path(home)}: {error}", ExitCode.UNEXPECTED)
    except VigilError as error:
        fail(str(error), error.exit_code)


def purge_reviewed_text(home: EngineHome) -> int:
    """Apply the retention period now; how many conversations lost their text."""
    retention = home.review_retention()
    with connect(home) as connection:
        return purge_expired_text(connection, retention, utc_now())


@contextmanager
def _queue(home: Path | None, *, purge: bool = True) -> Iterator[EngineHome]:
    engine_home = initialised_home(home)
    with local_database_errors(engine_home):
        if purge:
            purge_reviewed_text(engine_home)
        yield engine_home


def _find(engine_home: EngineHome, reference: str) -> ReviewItem:
    with connect(engine_home) as connection:
        return find_item(connection, reference)


#### Rendering ####


def _when(moment: datetime | None) -> str:
    return isoformat_z(moment) if moment is not None else "-"


def _verdict_text(item: ReviewItem) -> Text:
    if item.verdict is None:
        return Text("pending", style="yellow")
    return Text(item.verdict.value, style=VERDICT_STYLE[item.verdict])


def item_summary(item: ReviewItem) -> dict[str, Any]:
    """An item as ``review list --json`` prints it (no text)."""
    return {
        "id": item.item_id,
        "conversation_id": item.conversation_id,
        "bundle": item.bundle,
        "score": item.score,
        "threshold": item.threshold,
        "top_characteristics": item.top_characteristics(),
        "queued_at": isoformat_z(item.queued_at),
        "verdict": None if item.verdict is None else item.verdict.value,
        "moderator": item.moderator,
        "reviewed_at": None if item.reviewed_at is None else isoformat_z(item.reviewed_at),
        "share_text": item.share_text,
        "text_deleted": item.text_deleted_at is not None,
    }


def _bar(value: float) -> Text:
    filled = round(max(0.0, min(1.0, value)) * BAR_WIDTH)
    style = "red" if value >= 0.66 else "yellow" if value >= 0.33 else "green"
    bar = Text("█" * filled, style=style)
    bar.append("·" * (BAR_WIDTH - filled), style="dim")
    return bar


def _header(item: ReviewItem) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("Conversation", Text(storable(item.conversation_id)))
    score = Text(f"{item.score:.3f}", style="bold red" if item.score >= item.threshold else "")
    score.append(f"  (threshold {item.threshold:.3f})", style="")
    grid.add_row("Score", score)
    grid.add_row("Bundle", Text(item.bundle))
    first_flag = item.score_line.get("first_flag_message")
    grid.add_row(
        "First flag", "never crossed" if first_flag is None else f"after message {first_flag}"
    )
    if item.source_file:
        grid.add_row("Source", Text(storable(item.source_file)))
    grid.add_row("Queued at", _when(item.queued_at))
    verdict = _verdict_text(item)
    if item.verdict is not None:
        verdict.append(f" by {item.moderator or 'unknown'} at {_when(item.reviewed_at)}", style="")
        if item.share_text:
            verdict.append(" (text sharing confirmed)", style="")
    grid.add_row("Verdict", verdict)
    if item.note:
        grid.add_row("Note", Text(storable(item.note)))
    return grid


def _characteristics(item: ReviewItem) -> Table:
    table = Table(title="Characteristics", title_justify="left", show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    table.add_column(justify="right")
    ranked = sorted(item.characteristics.items(), key=lambda kv: (-kv[1], kv[0]))
    for name, value in ranked:
        table.add_row(name, _bar(value), f"{value:.2f}")
    return table


def _participants(item: ReviewItem) -> Table | Text:
    authors = list(dict.fromkeys(str(m.get("author")) for m in item.messages))
    users = list(dict.fromkeys([*item.participants, *authors]))
    if not users:
        return Text("No participants.", style="dim")
    table = Table(title="Participants", title_justify="left")
    table.add_column("user")
    table.add_column("messages", justify="right")
    table.add_column("known facts")
    for user in users:
        facts = item.participants.get(user) or {}
        shown = ", ".join(f"{key}: {value}" for key, value in facts.items()) if facts else ""
        count = sum(1 for m in item.messages if str(m.get("author")) == user)
        table.add_row(Text(storable(user)), str(count), Text(storable(shown)))
    return table


def _messages(item: ReviewItem) -> Table | Text:
    if item.conversation is None:
        return Text(
            f"The text was deleted at {_when(item.text_deleted_at)} under the retention "
            "period; score, verdict and features are kept.",
            style="yellow",
        )
    evidence: dict[int, list[str]] = {}
    for entry in item.score_line.get("evidence") or []:
        index = entry.get("message")
        if isinstance(index, int):
            evidence.setdefault(index, []).append(str(entry.get("characteristic")))
    first_flag = item.score_line.get("first_flag_message")
    table = Table(title="Messages (evidence highlighted)", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("time")
    table.add_column("author")
    table.add_column("message")
    table.add_column("evidence")
    for index, message in enumerate(item.messages):
        marks = evidence.get(index, [])
        tags = Text(", ".join(dict.fromkeys(marks)), style="bold red")
        if index == first_flag:
            tags.append(" ⚑ crossed threshold" if marks else "⚑ crossed threshold", style="bold")
        table.add_row(
            f"{'▶ ' if marks else ''}{index}",
            Text(storable(str(message.get("ts") or ""))),
            Text(storable(str(message.get("author")))),
            Text(storable(str(message.get("text"))), style="reverse" if marks else ""),
            tags,
            style="on grey15" if marks else None,
        )
    return table


def _parse_verdict(value: str) -> Verdict:
    try:
        return Verdict(value.strip().lower())
    except ValueError:
        fail(f"unknown verdict {value!r}; choose one of {VERDICTS}", ExitCode.BAD_INPUT)


def _moderator(engine_home: EngineHome, given: str | None) -> str:
    if given is not None:
        if not given.strip():
            fail("--moderator must not be empty", ExitCode.BAD_INPUT)
        return given.strip()
    configured = engine_home.configured_moderator()
    if configured is not None:
        return configured
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in some containers
        return "unknown"


#### Commands ####

IdArgument = Annotated[
    str,
    typer.Argument(metavar="ID", help="Review item id, or at least its first 6 characters."),
]


@review_app.command("list")
def list_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print the items as JSON.")] = False,
    include_all: Annotated[
        bool, typer.Option("--all", help="Include reviewed items (default: pending only).")
    ] = False,
    home: HomeOption = None,
) -> None:
    """List the flagged conversations waiting for a verdict, highest score first."""
    with _queue(home) as engine_home, connect(engine_home) as connection:
        items = list_items(connection, include_reviewed=include_all)
    if as_json:
        print(json.dumps([item_summary(item) for item in items], indent=2))
        return
    if not items:
        console.print(
            "The review queue is empty." if include_all else "No conversations wait for review."
        )
        return
    table = Table(title=f"Review queue ({len(items)} {'items' if include_all else 'pending'})")
    table.add_column("id")
    table.add_column("score", justify="right")
    table.add_column("characteristics")
    table.add_column("queued at")
    table.add_column("verdict")
    for item in items:
        table.add_row(
            item.item_id[:ID_SHOWN],
            f"{item.score:.3f}",
            ", ".join(item.top_characteristics()) or "-",
            _when(item.queued_at),
            _verdict_text(item),
        )
    console.print(table)
    console.print("Show one: vigil-engine review show ID", style="dim")


@review_app.command("show")
def show_command(item_id: IdArgument, home: HomeOption = None) -> None:
    """Show a flagged conversation: participants, messages with evidence, ratings, score."""
    with _queue(home) as engine_home:
        item = _find(engine_home, item_id)
    console.print(
        Panel(
            Group(_header(item), Text(""), _characteristics(item)),
            title=f"Review item {item.item_id}",
            title_align="left",
        )
    )
    console.print(_participants(item))
    console.print(_messages(item))
    if item.verdict is None:
        console.print(
            f"Record a verdict: vigil-engine review verdict {item.item_id[:ID_SHOWN]} "
            f"{{{VERDICTS.replace(', ', '|')}}}",
            style="dim",
            markup=False,
        )


@review_app.command("verdict")
def verdict_command(
    item_id: IdArgument,
    verdict: Annotated[str, typer.Argument(metavar="VERDICT", help=f"One of {VERDICTS}.")],
    note: Annotated[str | None, typer.Option("--note", help="A note for the record.")] = None,
    moderator: Annotated[
        str | None,
        typer.Option("--moderator", help="Who decided (default: config `moderator`, then you)."),
    ] = None,
    share_text: Annotated[
        bool,
        typer.Option(
            "--share-text",
            help="Confirm this conversation's text may go to the portal with the feedback "
            "(only if your organisation enabled text sharing there).",
        ),
    ] = False,
    home: HomeOption = None,
) -> None:
    """Record a moderator's verdict (a later verdict replaces it)."""
    decision = _parse_verdict(verdict)
    if note is not None and len(note) > MAX_NOTE:
        fail(f"--note is longer than {MAX_NOTE:,} characters", ExitCode.BAD_INPUT)
    with _queue(home) as engine_home:
        who = _moderator(engine_home, moderator)
        with connect(engine_home) as connection:
            item = find_item(connection, item_id)
            if share_text and item.conversation is None:
                fail(
                    f"review item {item.item_id}: its text was deleted under the retention "
                    "period; there is no text to share",
                    ExitCode.BAD_INPUT,
                )
            record_verdict(
                connection,
                item,
                decision,
                note=note,
                moderator=who,
                share_text=share_text,
                now=utc_now(),
            )
    line = f"Recorded {decision.value} for review item {item.item_id[:ID_SHOWN]} by {who}."
    if item.verdict is not None:
        line += f" It replaces {item.verdict.value}; usage counts the item's first verdict only."
    console.print(line, markup=False)
    if share_text:
        console.print(
            "Text sharing confirmed: `vigil-engine report` sends this conversation's text with "
            "its feedback only if your organisation enabled text sharing in the portal.",
            markup=False,
        )
    if decision in {Verdict.GROOMING, Verdict.IMMINENT_THREAT}:
        console.print(
            f"Draft a report: vigil-engine review export {item.item_id[:ID_SHOWN]} "
            "--format cybertip --out FILE",
            style="dim",
            markup=False,
        )


@review_app.command("export")
def export_command(
    item_id: IdArgument,
    out: Annotated[Path, typer.Option("--out", help="Write the report draft here.")],
    fmt: Annotated[str, typer.Option("--format", help="Report format: cybertip.")] = "cybertip",
    home: HomeOption = None,
) -> None:
    """Write a CyberTipline-style XML report draft of a conversation judged grooming."""
    if fmt not in EXPORT_FORMATS:
        fail(
            f"unknown report format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}",
            ExitCode.BAD_INPUT,
        )
    # Imported here: only exporting needs the XML writer.
    from scoring_engine.review.cybertip import export_report  # noqa: PLC0415

    with _queue(home) as engine_home:
        item = _find(engine_home, item_id)
        try:
            export_report(item, out)
        except OSError as error:
            fail(f"cannot write {out}: {error.strerror or error}", ExitCode.BAD_INPUT)
    console.print(
        f"Wrote a CyberTipline report draft of review item {item.item_id[:ID_SHOWN]} to {out} "
        "(mode 0600: it holds the conversation's text). Check it, complete the reporter "
        "section and submit it through your organisation's CyberTipline account.",
        markup=False,
    )


@review_app.command("purge")
def purge_command(home: HomeOption = None) -> None:
    """Delete now the text of conversations reviewed longer ago than the retention period."""
    with _queue(home, purge=False) as engine_home:
        retention = engine_home.review_retention()
        purged = purge_reviewed_text(engine_home)
    console.print(
        f"Deleted the text of {purged:,} reviewed conversation{'' if purged == 1 else 's'} "
        f"older than {retention.days} days; their verdicts, scores and features are kept.",
        markup=False,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(review_app)
