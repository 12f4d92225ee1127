"""CSV reader: one message per row (SPEC §2).

- The header must name ``conversation_id``, ``author`` and ``text``, in any order; ``ts``,
  ``label`` and ``platform`` are read when present; other columns are ignored. A header without
  the required columns is reported once (line of the header) and the file is not read further.
- The rows of a conversation must be contiguous. A conversation id that comes back after another
  conversation is reported at that row, and the rows of that second run are rejected.
- A conversation's label comes from its rows; empty cells are no label, two different labels are
  an error. Its platform is the first non-empty ``platform`` cell.
- A bad row (missing cell, bad label or timestamp, text too long, invalid UTF-8, malformed
  quoting, line over ``max_record_bytes``) rejects its whole conversation, reported once at the
  first line of that row. Line numbers are physical lines of the file, so quoted fields that span
  lines are counted as the lines they take. The conversation of a row with malformed quoting is
  told by parsing that row leniently.
- A physical line over ``max_record_bytes`` is cut there (closing an open quote) and its row is
  rejected; the rest of that line is skipped without being held in memory.
- A truncated or corrupt compressed stream is reported at the line reached; the conversation
  being read then is dropped, since its rows may go on past the cut.
- Cells are limited by the csv module's field size limit (131,072 characters unless the process
  changes it) as well as by ``max_text_chars``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from scoring_engine.conversation import LABELS, Conversation, Label, Message
from scoring_engine.formats.base import (
    UTF8_BOM,
    ReaderLimits,
    RecordError,
    RecordRejected,
    RecordReporter,
    StreamReadError,
    excerpt,
    iter_lines,
    timestamp_problem,
)

if TYPE_CHECKING:
    import io
    from collections.abc import Iterator

REQUIRED_COLUMNS = ("conversation_id", "author", "text")
OPTIONAL_COLUMNS = ("ts", "label", "platform")


@dataclass(slots=True)
class _Columns:
    conversation_id: int
    author: int
    text: int
    ts: int | None
    label: int | None
    platform: int | None

    @property
    def required_width(self) -> int:
        return max(self.conversation_id, self.author, self.text) + 1


@dataclass(slots=True)
class _Run:
    """The rows of one conversation read so far."""

    conversation_id: str
    messages: list[Message] = field(default_factory=list)
    label: str | None = None
    label_line: int = 0
    platform: str | None = None
    rejected: bool = False


class _DecodedLines:
    """Feeds the csv module decoded physical lines, keeping those of the row being read.

    The csv module reads exactly the lines of one row per step, so what was fed between two
    steps is that row: its lines (to salvage the conversation id of a row that does not parse)
    and the first problem found on them.
    """

    def __init__(self, stream: io.BufferedIOBase, limits: ReaderLimits) -> None:
        self._lines = iter_lines(stream, limits.max_record_bytes)
        self._max_bytes = limits.max_record_bytes
        self._row_lines: list[str] = []
        self._row_problem: str | None = None

    def __iter__(self) -> Iterator[str]:
        for line_number, raw, oversized in self._lines:
            data = raw[len(UTF8_BOM) :] if line_number == 1 and raw.startswith(UTF8_BOM) else raw
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                if not oversized:
                    self._note(f"invalid UTF-8 at byte {exc.start + 1} of line {line_number}")
                text = data.decode("utf-8", errors="replace")
            if oversized:
                self._note(
                    f"line {line_number} longer than {self._max_bytes} bytes (max_record_bytes)"
                )
                # Cut lines are most often one huge quoted cell: close it so the rows after
                # this one are parsed as rows again.
                text = text + '"\n' if text.count('"') % 2 else text + "\n"
            self._row_lines.append(text)
            yield text

    def _note(self, problem: str) -> None:
        if self._row_problem is None:
            self._row_problem = problem

    def take_row(self) -> tuple[list[str], str | None]:
        """The lines of the row just read and their first problem; starts the next row."""
        taken = self._row_lines, self._row_problem
        self._row_lines, self._row_problem = [], None
        return taken


def _salvage(lines: list[str]) -> list[str]:
    """The cells of a row the strict parser refused, as well as a lenient parser can tell."""
    try:
        return next(csv.reader(lines), [])
    except csv.Error:
        return []


def read_csv(
    stream: io.BufferedIOBase, path: str, reporter: RecordReporter, limits: ReaderLimits
) -> Iterator[Conversation]:
    lines = _DecodedLines(stream, limits)
    reader = csv.reader(lines, strict=True)
    columns: _Columns | None = None
    run: _Run | None = None
    first_line_of: dict[str, int] = {}
    last_line = 0

    while True:
        first_line = last_line + 1
        malformed: str | None = None
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            row, malformed = [], f"malformed CSV: {exc}"
        except StreamReadError as failure:
            reporter.report(RecordError(path, failure.line, "file", failure.reason))
            return
        last_line = reader.line_num
        row_lines, problem = lines.take_row()
        if malformed is not None:
            # A problem on the lines (a cut line, bad UTF-8) is the likelier cause.
            problem = problem or malformed
            row = _salvage(row_lines)

        if columns is None:
            if not row and problem is None:
                continue
            try:
                columns = _header_columns(row, problem)
            except RecordRejected as rejected:
                reporter.report(RecordError(path, first_line, rejected.field, rejected.reason))
                return
            continue

        if not row:
            if problem is not None:  # nothing tells which conversation this row belonged to
                reporter.report(RecordError(path, first_line, "row", problem))
            continue
        conversation_id = row[columns.conversation_id] if len(row) > columns.conversation_id else ""
        if run is None or conversation_id != run.conversation_id:
            if run is not None and not run.rejected:
                yield _conversation(run)
            run = _Run(conversation_id)
            first = first_line_of.get(conversation_id)
            if first is not None:
                run.rejected = True
                reporter.report(
                    RecordError(
                        path,
                        first_line,
                        "conversation_id",
                        f"conversation {excerpt(conversation_id)} comes back after other "
                        f"conversations (its rows must be contiguous; first seen on line {first})",
                    )
                )
                continue
            first_line_of[conversation_id] = first_line
        if run.rejected:
            continue
        try:
            _add_row(run, row, columns, first_line, limits, line_problem=problem)
        except RecordRejected as rejected:
            run.rejected = True
            reporter.report(RecordError(path, first_line, rejected.field, rejected.reason))

    if run is not None and not run.rejected:
        yield _conversation(run)


def _header_columns(row: list[str], problem: str | None) -> _Columns:
    if problem is not None:
        raise RecordRejected("header", problem)
    index_of: dict[str, int] = {}
    for index, name in enumerate(row):
        key = name.strip()
        if key in index_of and key in REQUIRED_COLUMNS + OPTIONAL_COLUMNS:
            raise RecordRejected("header", f"column {key!r} appears twice")
        index_of.setdefault(key, index)
    missing = [name for name in REQUIRED_COLUMNS if name not in index_of]
    if missing:
        raise RecordRejected(
            "header",
            f"missing column(s) {', '.join(missing)} (needs {','.join(REQUIRED_COLUMNS)})",
        )
    return _Columns(
        conversation_id=index_of["conversation_id"],
        author=index_of["author"],
        text=index_of["text"],
        ts=index_of.get("ts"),
        label=index_of.get("label"),
        platform=index_of.get("platform"),
    )


def _add_row(
    run: _Run,
    row: list[str],
    columns: _Columns,
    line_number: int,
    limits: ReaderLimits,
    *,
    line_problem: str | None,
) -> None:
    if line_problem is not None:
        raise RecordRejected("row", line_problem)
    if len(row) < columns.required_width:
        for name in REQUIRED_COLUMNS:
            if getattr(columns, name) >= len(row):
                raise RecordRejected(
                    name, f"missing (the row has {len(row)} cells, the header more)"
                )
    if not run.conversation_id:
        raise RecordRejected("conversation_id", "must not be empty")
    text = row[columns.text]
    if len(text) > limits.max_text_chars:
        raise RecordRejected(
            "text", f"{len(text)} characters, more than {limits.max_text_chars} (max_text_chars)"
        )
    author = row[columns.author]
    if len(author) > limits.max_text_chars:
        raise RecordRejected(
            "author", f"longer than {limits.max_text_chars} characters (max_text_chars)"
        )
    ts = _cell(row, columns.ts)
    if ts:
        problem = timestamp_problem(ts)
        if problem is not None:
            raise RecordRejected("ts", f"{problem}: {excerpt(ts)}")
    label = _cell(row, columns.label).strip()
    if label:
        if label not in LABELS:
            raise RecordRejected(
                "label", f"must be 'grooming', 'normal' or empty, not {excerpt(label, 20)}"
            )
        if run.label is None:
            run.label, run.label_line = label, line_number
        elif label != run.label:
            raise RecordRejected(
                "label",
                f"{label!r} conflicts with {run.label!r} on line {run.label_line} "
                "of the same conversation",
            )
    if run.platform is None:
        run.platform = _cell(row, columns.platform) or None
    if len(run.messages) >= limits.max_messages:
        raise RecordRejected(
            "conversation_id", f"more than {limits.max_messages} messages (max_messages)"
        )
    run.messages.append(Message(author, text, ts or None))


def _cell(row: list[str], index: int | None) -> str:
    if index is None or index >= len(row):
        return ""
    return row[index]


def _conversation(run: _Run) -> Conversation:
    return Conversation(
        id=run.conversation_id,
        messages=tuple(run.messages),
        label=cast("Label | None", run.label),
        platform=run.platform,
    )
