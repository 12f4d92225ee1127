"""What every command of both CLIs shares: one-line errors, exit codes, progress, input errors."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from scoring_engine.errors import ExitCode
from scoring_engine.formats import RecordError
from scoring_engine.home import EngineHome

err_console = Console(stderr=True, highlight=False)
MAX_REPORTED_ERRORS = 50


def plural(count: int, noun: str) -> str:
    """``1 batch``, ``2 batches``, ``3 records``."""
    suffix = "es" if noun.endswith("ch") else "s"
    return f"{count:,} {noun}{'' if count == 1 else suffix}"


def fail(message: str, code: ExitCode | int) -> NoReturn:
    """One clear line on stderr, then the SPEC §6 exit code."""
    # Messages quote files, tokens and the portal's answers: never read them as markup.
    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(int(code))


def warn(message: str) -> None:
    err_console.print(f"[bold yellow]warning:[/] {escape(message)}", soft_wrap=True)


def initialised_home(home: Path | None) -> EngineHome:
    """The engine home of ``--home`` (or the default), or exit 3 if ``init`` never ran."""
    engine_home = EngineHome.resolve(home)
    if not engine_home.is_initialised():
        fail(
            f"{engine_home.path} is not initialised: run "
            "`vigil-engine init --root ROOT.json --license TOKEN_FILE`",
            ExitCode.LICENSE,
        )
    return engine_home


class InputErrorPrinter:
    """Prints ``FILE:LINE: field: reason`` for bad records, up to a cap, then counts."""

    def __init__(self, limit: int = MAX_REPORTED_ERRORS) -> None:
        self.limit = limit
        self.count = 0

    def __call__(self, error: RecordError) -> None:
        self.count += 1
        if self.count <= self.limit:
            err_console.print(f"{error}", markup=False, highlight=False, soft_wrap=True)
        elif self.count == self.limit + 1:
            err_console.print(
                f"(more bad records; only the first {self.limit} are listed)", markup=False
            )


def check_inputs(paths: list[Path]) -> None:
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        fail(f"no such input file: {', '.join(missing)}", ExitCode.BAD_INPUT)


@contextmanager
def progress_counter(description: str) -> Iterator[Callable[[int, int], None]]:
    """A live count of conversations and messages on a terminal; silent otherwise."""
    if not sys.stderr.isatty():
        yield lambda _conversations, _messages: None
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        TextColumn("{task.completed:,} conversations"),
        TextColumn("{task.fields[messages]:,} messages"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        task = progress.add_task(description, total=None, messages=0)

        def update(conversations: int, messages: int) -> None:
            progress.update(task, completed=conversations, messages=messages)

        yield update


@contextmanager
def progress_steps() -> Iterator[Callable[[str, int, int], None]]:
    """Progress bars for named steps with known totals (training)."""
    if not sys.stderr.isatty():
        yield lambda _step, _done, _total: None
        return
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
    ) as progress:
        tasks: dict[str, TaskID] = {}

        def update(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = progress.add_task(step, total=total)
            progress.update(tasks[step], completed=done, total=total)

        yield update
