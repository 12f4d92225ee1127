"""What every conversation reader shares: limits, the error record, counting and opening files.

Rules the readers enforce, whatever the format:

- A bad record is reported as ``FILE:LINE: field: reason`` (:class:`RecordError`) and skipped;
  the reader goes on with the next record. In strict mode the first one raises
  :class:`InputFormatError` instead.
- Reasons never quote conversation text: they name the field, the expected type and at most a
  short excerpt of an identifier or label.
- Sizes are bounded by :class:`ReaderLimits`, checked before a record is kept in memory.
- Files are read as bytes and decoded line by line, so invalid UTF-8 is one bad record, not a
  failed run; gzip is recognised by its magic bytes, whatever the file is called.
"""

from __future__ import annotations

import gzip
import logging
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from scoring_engine.errors import BadInputError

if TYPE_CHECKING:
    import io
    from collections.abc import Callable, Iterator
    from contextlib import ExitStack
    from pathlib import Path

logger = logging.getLogger("scoring_engine.formats")

GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class ReaderLimits:
    """Every size limit of the readers, in one place.

    max_record_bytes: one JSON line, one CSV physical line, or one PAN 2012 ``<conversation>``.
    max_messages: messages in one conversation.
    max_text_chars: characters in one message's text (and in one author id).
    """

    max_record_bytes: int = 16 * 1024 * 1024
    max_messages: int = 100_000
    max_text_chars: int = 100_000


@dataclass(frozen=True, slots=True)
class RecordError:
    """One rejected record (or unreadable file, with ``line`` 0)."""

    path: str
    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.field}: {self.reason}"


@dataclass(slots=True)
class ReadStats:
    read: int = 0  # conversations yielded
    rejected: int = 0  # errors reported: bad records, and files that could not be read
    files: int = 0  # files opened
    repeats: int = 0  # exact repeats skipped (PAN 2012 repeats some conversations whole)


class InputFormatError(BadInputError):
    """A bad record in strict mode, or an input whose format cannot be told."""

    def __init__(self, error: RecordError) -> None:
        super().__init__(str(error))
        self.error = error


class RecordRejected(Exception):  # noqa: N818 - a control-flow signal inside readers, not an error type
    """Raised by record parsers; the reader turns it into a :class:`RecordError`."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class StreamReadError(Exception):
    """The byte stream itself failed mid-file (truncated or corrupt gzip, I/O error)."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason


class RecordReporter:
    """Sends each bad record to ``on_error`` (or the log), counts it, and raises when strict."""

    def __init__(
        self,
        stats: ReadStats,
        *,
        strict: bool,
        on_error: Callable[[RecordError], None] | None,
    ) -> None:
        self.stats = stats
        self.strict = strict
        self.on_error = on_error

    def report(self, error: RecordError) -> None:
        self.stats.rejected += 1
        if self.strict:
            raise InputFormatError(error)
        if self.on_error is None:
            logger.warning("%s", error)
        else:
            self.on_error(error)


READ_FAILURES = (EOFError, OSError, zlib.error)


def read_failure_reason(exc: BaseException) -> str:
    if isinstance(exc, EOFError):
        return "truncated compressed stream (the file ends mid-record)"
    if isinstance(exc, gzip.BadGzipFile | zlib.error):
        return f"corrupt compressed stream ({exc})"
    if isinstance(exc, OSError) and exc.strerror:
        return f"cannot read: {exc.strerror}"
    return f"cannot read: {exc}"


def open_input(path: Path, stack: ExitStack) -> io.BufferedIOBase:
    """Opens ``path`` for binary reading, through gzip when it starts with the gzip magic bytes.

    Raises OSError when the file cannot be opened; the files are closed with ``stack``.
    """
    raw = stack.enter_context(path.open("rb"))
    if raw.peek(2)[:2] == GZIP_MAGIC:
        return stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))
    return raw


def iter_lines(stream: io.BufferedIOBase, max_bytes: int) -> Iterator[tuple[int, bytes, bool]]:
    """Yields ``(line_number, bytes, oversized)`` for each physical line, newline included.

    A line longer than ``max_bytes`` is cut there (``oversized`` is True) and the rest of it is
    skipped without being held in memory. Raises :class:`StreamReadError` when the stream fails.
    """
    line_number = 0
    readline = stream.readline
    try:
        while True:
            line = readline(max_bytes + 1)
            if not line:
                return
            line_number += 1
            if len(line) > max_bytes and not line.endswith(b"\n"):
                skip = line
                while skip and not skip.endswith(b"\n"):
                    skip = readline(1 << 20)
                yield line_number, line[:max_bytes], True
            else:
                yield line_number, line, False
    except READ_FAILURES as exc:
        raise StreamReadError(line_number + 1, read_failure_reason(exc)) from exc


def timestamp_problem(value: str) -> str | None:
    """Why ``value`` is not an ISO 8601 date-time, or None when it is one."""
    candidate = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        datetime.fromisoformat(candidate)
    except ValueError:
        return "not an ISO 8601 date-time"
    return None


_JSON_TYPE_NAMES = {
    type(None): "null",
    bool: "boolean",
    int: "number",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
}


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for error reasons."""
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def excerpt(value: str, limit: int = 40) -> str:
    """A short quoted excerpt of an identifier or label (never of message text)."""
    if len(value) <= limit:
        return repr(value)
    return repr(value[:limit]) + "..."
