"""Helpers for the reader tests: read everything and keep what a caller would see."""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scoring_engine.formats import ReadStats, RecordError, read_conversations

if TYPE_CHECKING:
    from scoring_engine.conversation import Conversation

FIXTURES = Path(__file__).parent / "fixtures"


@dataclass
class ReadResult:
    conversations: list[Conversation]
    errors: list[RecordError] = field(default_factory=list)
    stats: ReadStats = field(default_factory=ReadStats)

    @property
    def ids(self) -> list[str]:
        return [conversation.id for conversation in self.conversations]

    @property
    def error_places(self) -> list[tuple[int, str]]:
        return [(error.line, error.field) for error in self.errors]


def read_all(*paths: str | Path, **options: Any) -> ReadResult:
    errors: list[RecordError] = []
    stats = ReadStats()
    conversations = list(read_conversations(paths, on_error=errors.append, stats=stats, **options))
    return ReadResult(conversations, errors, stats)


def write_lines(path: Path, *lines: str | bytes, compress: bool = False) -> Path:
    data = b"".join((line if isinstance(line, bytes) else line.encode()) + b"\n" for line in lines)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


GOOD = '{"id": "%s", "messages": [{"author": "u1", "text": "hello"}]}'


def good(conversation_id: str) -> str:
    return GOOD % conversation_id
