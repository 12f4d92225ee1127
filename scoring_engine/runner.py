"""Stream conversations from files through a model, writing SPEC §3 lines as it goes.

Shared by ``vigil-engine score``/``evaluate`` and ``vigil-portal models evaluate``: input
is read lazily, scored a bounded batch at a time and written out before the next batch
is read, so memory stays flat however many conversations the files hold.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from scoring_engine.conversation import Conversation
from scoring_engine.evaluation import EvaluationAccumulator
from scoring_engine.formats import ReadStats, RecordError, read_conversations
from scoring_engine.model.scorer import ConversationScore, GroomingModel


@dataclass
class RunSummary:
    read: int = 0
    scored: int = 0
    flagged: int = 0
    rejected: int = 0
    messages: int = 0
    seconds: float = 0.0
    stats: ReadStats = field(default_factory=ReadStats)

    @property
    def messages_per_second(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, float | int]:
        return {
            "read": self.read,
            "scored": self.scored,
            "flagged": self.flagged,
            "rejected": self.rejected,
            "messages": self.messages,
            "seconds": round(self.seconds, 3),
            "messages_per_second": round(self.messages_per_second),
        }


@dataclass
class ScoringRun:
    """One pass of a model over input files."""

    model: GroomingModel
    paths: Sequence[Path]
    fmt: str = "auto"
    strict: bool = False
    threshold: float | None = None
    bundle: str | None = None
    on_error: Callable[[RecordError], None] | None = None
    on_progress: Callable[[int, int], None] | None = None  # (conversations, messages) read
    # Called with each conversation and its score, in input order (the review queue).
    on_scored: Callable[[Conversation, ConversationScore], None] | None = None
    summary: RunSummary = field(default_factory=RunSummary)
    # Conversations read but not yet scored: at most one model batch, so memory stays flat.
    _pending: deque[Conversation] = field(default_factory=deque, init=False, repr=False)

    def scores(self) -> Iterator[ConversationScore]:
        started = time.perf_counter()
        stats = self.summary.stats
        conversations = read_conversations(
            self.paths, self.fmt, strict=self.strict, on_error=self.on_error, stats=stats
        )
        try:
            for result in self.model.score_stream(
                self._counted(conversations), threshold=self.threshold, bundle=self.bundle
            ):
                self.summary.scored += 1
                self.summary.flagged += int(result.flagged)
                if self.on_scored is not None:
                    self.on_scored(self._pending.popleft(), result)
                yield result
        finally:
            self.summary.read = stats.read
            self.summary.rejected = stats.rejected
            self.summary.seconds = time.perf_counter() - started

    def _counted(self, conversations: Iterable[Conversation]) -> Iterator[Conversation]:
        for conversation in conversations:
            self.summary.messages += len(conversation.messages)
            if self.on_scored is not None:
                self._pending.append(conversation)
            if self.on_progress is not None and self.summary.stats.read % 256 == 0:
                self.on_progress(self.summary.stats.read, self.summary.messages)
            yield conversation


def write_scores(
    scores: Iterable[ConversationScore],
    out: IO[str] | None,
    *,
    only_flagged: bool = False,
    accumulator: EvaluationAccumulator | None = None,
) -> None:
    """Write SPEC §3 lines (and feed the evaluation accumulator with labelled ones)."""
    for result in scores:
        if accumulator is not None and result.label is not None:
            accumulator.add(
                score=result.score,
                label=result.label == "grooming",
                flagged_at=result.first_flag_message,
                n_messages=result.n_messages,
                source=result.source,
            )
        if out is not None and (result.flagged or not only_flagged):
            out.write(json.dumps(result.to_dict(), separators=(",", ":")) + "\n")
