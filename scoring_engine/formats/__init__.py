"""Streaming conversation readers: JSON Lines, CSV and PAN 2012 XML (SPEC §2).

``read_conversations`` is a generator: it opens each file when it gets to it, yields each valid
conversation as soon as it is read and keeps only the ids seen in the current file, so memory
does not grow with the number of conversations.

Every problem is one :class:`RecordError` (``FILE:LINE: field: reason``), counted in
``ReadStats.rejected`` and passed to ``on_error`` (or logged when there is none); reading goes
on with the next record. A file that cannot be opened or whose format cannot be told is
reported with line 0 and skipped; a truncated or corrupt compressed stream and malformed XML are
reported at the line reached and end that file. With ``strict=True`` the first problem raises
:class:`InputFormatError` instead, when the reader reaches it.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from scoring_engine.errors import BadInputError
from scoring_engine.formats.base import (
    InputFormatError,
    ReaderLimits,
    ReadStats,
    RecordError,
    RecordReporter,
    open_input,
)
from scoring_engine.formats.csv_reader import read_csv
from scoring_engine.formats.detect import FORMATS, detect_format
from scoring_engine.formats.jsonl import conversation_from_json, read_jsonl
from scoring_engine.formats.pan12 import find_predator_lists, load_predator_ids, read_pan12

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from scoring_engine.conversation import Conversation

__all__ = [
    "FORMATS",
    "InputFormatError",
    "ReadStats",
    "ReaderLimits",
    "RecordError",
    "conversation_from_json",
    "detect_format",
    "find_predator_lists",
    "load_predator_ids",
    "read_conversations",
]


def read_conversations(
    paths: Iterable[str | Path],
    fmt: str = "auto",
    *,
    strict: bool = False,
    on_error: Callable[[RecordError], None] | None = None,
    stats: ReadStats | None = None,
    pan12_predators: Path | None = None,
    limits: ReaderLimits = ReaderLimits(),
) -> Iterator[Conversation]:
    """Yields the valid conversations of ``paths``, in file order then record order.

    ``fmt`` is one of :data:`FORMATS`; ``auto`` decides per file (:func:`detect_format`).
    ``pan12_predators`` is a predator id list for PAN 2012 inputs; without it each XML file uses
    the lists found next to it (:func:`find_predator_lists`). The format and the given predator
    list are checked at once (raising :class:`BadInputError`); everything else as it is read.
    """
    if fmt not in FORMATS:
        raise BadInputError(f"unknown input format {fmt!r}; choose one of {', '.join(FORMATS)}")
    predators: frozenset[str] | None = None
    if pan12_predators is not None:
        try:
            predators = load_predator_ids(pan12_predators)
        except (OSError, UnicodeDecodeError) as exc:
            raise BadInputError(
                f"cannot read the predator id list {pan12_predators}: {exc}"
            ) from exc
    if isinstance(paths, str | Path):
        paths = [paths]
    reporter = RecordReporter(
        stats if stats is not None else ReadStats(), strict=strict, on_error=on_error
    )
    return _read_files(paths, fmt, reporter, predators, limits)


def _read_files(
    paths: Iterable[str | Path],
    fmt: str,
    reporter: RecordReporter,
    predators: frozenset[str] | None,
    limits: ReaderLimits,
) -> Iterator[Conversation]:
    stats = reporter.stats
    predators_by_directory: dict[Path, frozenset[str] | None] = {}
    for given in paths:
        path = Path(given)
        name = str(given)
        file_format = fmt
        if file_format == "auto":
            try:
                file_format = detect_format(path)
            except InputFormatError as exc:
                reporter.report(exc.error)
                continue
        with ExitStack() as stack:
            try:
                stream = open_input(path, stack)
            except OSError as exc:
                reason = f"cannot open: {exc.strerror or exc}"
                reporter.report(RecordError(name, 0, "file", reason))
                continue
            stats.files += 1
            if file_format == "jsonl":
                conversations = read_jsonl(stream, name, reporter, limits)
            elif file_format == "csv":
                conversations = read_csv(stream, name, reporter, limits)
            else:
                file_predators = predators
                if file_predators is None:
                    directory = path.parent
                    if directory not in predators_by_directory:
                        predators_by_directory[directory] = _predators_next_to(directory, reporter)
                    file_predators = predators_by_directory[directory]
                conversations = read_pan12(stream, name, reporter, limits, file_predators)
            for conversation in conversations:
                stats.read += 1
                yield conversation


def _predators_next_to(directory: Path, reporter: RecordReporter) -> frozenset[str] | None:
    lists = find_predator_lists(directory)
    if not lists:
        return None
    ids: set[str] = set()
    for path in lists:
        try:
            ids |= load_predator_ids(path)
        except (OSError, UnicodeDecodeError) as exc:
            reporter.report(RecordError(str(path), 0, "file", f"cannot read predator list: {exc}"))
    return frozenset(ids)
