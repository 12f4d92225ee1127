"""``--format auto``: tell an input's format by its name, then by its first bytes."""

from __future__ import annotations

import csv
from contextlib import ExitStack
from typing import TYPE_CHECKING

from scoring_engine.formats.base import (
    READ_FAILURES,
    UTF8_BOM,
    InputFormatError,
    RecordError,
    open_input,
    read_failure_reason,
)

if TYPE_CHECKING:
    from pathlib import Path

FORMATS = ("auto", "jsonl", "csv", "pan12")

FORMAT_OF_EXTENSION = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
    ".xml": "pan12",
}

_SNIFF_BYTES = 8192


def detect_format(path: Path) -> str:
    """``jsonl``, ``csv`` or ``pan12`` for ``path``.

    The extension decides first (``.jsonl``, ``.ndjson``, ``.json``, ``.csv``, ``.xml``, each
    also with ``.gz``); otherwise the content does: ``{`` starts JSON Lines, ``<`` starts XML, and
    a first line naming ``conversation_id``, ``author`` and ``text`` is a CSV header. An empty
    file is JSON Lines (it holds no conversations either way). Raises :class:`InputFormatError`
    when the file cannot be read or its format cannot be told.
    """
    name = path.name.lower()
    name = name.removesuffix(".gz")
    for extension, fmt in FORMAT_OF_EXTENSION.items():
        if name.endswith(extension):
            return fmt
    return _sniff(path)


def _sniff(path: Path) -> str:
    try:
        with ExitStack() as stack:
            head = open_input(path, stack).read(_SNIFF_BYTES)
    except READ_FAILURES as exc:
        raise InputFormatError(RecordError(str(path), 0, "file", read_failure_reason(exc))) from exc
    head = head.removeprefix(UTF8_BOM).lstrip()
    if not head or head.startswith(b"{"):
        return "jsonl"
    if head.startswith(b"<"):
        return "pan12"
    first_line = head.split(b"\n", 1)[0].decode("utf-8", errors="replace")
    header = {name.strip() for row in csv.reader([first_line]) for name in row}
    if {"conversation_id", "author", "text"} <= header:
        return "csv"
    raise InputFormatError(
        RecordError(
            str(path),
            1,
            "format",
            "cannot tell the format from the name or the first line; "
            "choose one of jsonl, csv, pan12",
        )
    )
