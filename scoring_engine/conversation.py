"""The in-memory shape of a conversation (SPEC §2), shared by every reader and the model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Label = Literal["grooming", "normal"]
LABELS: frozenset[str] = frozenset({"grooming", "normal"})


@dataclass(frozen=True, slots=True)
class Message:
    author: str
    text: str
    ts: str | None = None


@dataclass(frozen=True, slots=True)
class Conversation:
    id: str
    messages: tuple[Message, ...]
    participants: dict[str, dict[str, Any]] = field(default_factory=dict)
    label: Label | None = None
    platform: str | None = None
    # Development fields of ../shared/data (kept for grouping folds and per-source reports,
    # never used as model input).
    source: str | None = None
    case: str | None = None
    ordered: bool = True

    @property
    def is_grooming(self) -> bool:
        return self.label == "grooming"
