"""What a ``vigil-engine score`` run leaves in the local database: usage and queued items.

Rules it keeps:

- Every run counts usage (:mod:`scoring_engine.usage`), whether or not it queues: per UTC
  day and bundle, conversations scored, flagged and the score histogram. Counts are kept in
  memory (constant size) and written in one transaction per chunk, never one per
  conversation, so counting does not slow scoring down.
- With ``queue``, each flagged conversation is put into the review queue
  (:func:`scoring_engine.review.queue.enqueue`). Flagged conversations wait in a buffer of
  at most ``chunk`` items, then go into the database in one transaction with the counts so
  far; memory stays flat however many conversations the run scores.
- Whatever was scored is recorded, even when the run stops early (``--strict`` on a bad
  record, a broken output pipe): the caller calls :meth:`ScoreRecorder.close` in a
  ``finally``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final

from scoring_engine import usage
from scoring_engine.conversation import Conversation
from scoring_engine.home import EngineHome
from scoring_engine.localdb import connect
from scoring_engine.review.queue import Queued, enqueue_many

if TYPE_CHECKING:
    from scoring_engine.model.scorer import ConversationScore

QUEUE_CHUNK: Final = 256
# Usage alone is written this often too, so a run killed after hours loses little.
USAGE_CHUNK: Final = 100_000


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class QueueCounts:
    new: int = 0
    updated: int = 0
    reopened: int = 0  # reviewed, but the conversation has grown since: pending again
    kept: int = 0  # already reviewed: left as the moderator judged it

    def add(self, outcome: Queued) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)

    @property
    def queued(self) -> int:
        return self.new + self.updated + self.reopened

    def summary(self) -> str:
        plural = "" if self.queued == 1 else "s"
        line = (
            f"review queue: {self.queued:,} flagged conversation{plural} queued "
            f"({self.new:,} new, {self.updated:,} updated"
            + (f", {self.reopened:,} reopened with new messages)" if self.reopened else ")")
        )
        if self.kept:
            line += f"; {self.kept:,} already reviewed, left as they are"
        return line


@dataclass
class ScoreRecorder:
    """The ``on_scored`` hook of a scoring run: counts usage and, with ``queue``, queues."""

    home: EngineHome
    bundle: str
    queue: bool = False
    source_file: str | None = None
    chunk: int = QUEUE_CHUNK
    clock: Callable[[], datetime] = utc_now
    counts: QueueCounts = field(default_factory=QueueCounts)
    _usage: dict[str, usage.ScoreTally] = field(default_factory=dict, init=False)
    _tally: usage.ScoreTally | None = field(default=None, init=False)
    _day_ends: datetime = field(default=datetime.min.replace(tzinfo=UTC), init=False)
    _unwritten: int = field(default=0, init=False)
    _flagged: list[tuple[Conversation, ConversationScore]] = field(default_factory=list, init=False)

    def __call__(self, conversation: Conversation, result: ConversationScore) -> None:
        now = self.clock()
        if self._tally is None or now >= self._day_ends:
            self._tally = self._tally_of(now)
        self._tally.add(result.score, flagged=result.flagged)
        self._unwritten += 1
        if self.queue and result.flagged:
            self._flagged.append((conversation, result))
            if len(self._flagged) >= self.chunk:
                self.flush()
        elif self._unwritten >= USAGE_CHUNK:
            self.flush()

    def _tally_of(self, now: datetime) -> usage.ScoreTally:
        """The tally of ``now``'s UTC day (read once a day, not once a conversation)."""
        moment = now.astimezone(UTC)
        start = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
        self._day_ends = start + timedelta(days=1)
        day = start.date().isoformat()
        tally = self._usage.get(day)
        if tally is None:
            tally = self._usage[day] = usage.ScoreTally()
        return tally

    def flush(self) -> None:
        """Write the counts and the buffered flagged conversations in one transaction."""
        if not self._unwritten and not self._flagged:
            return
        outcomes: list[Queued] = []
        with connect(self.home) as connection:
            for day, tally in self._usage.items():
                usage.record_tally(connection, day, self.bundle, tally)
            if self._flagged:
                outcomes = enqueue_many(
                    connection,
                    self._flagged,
                    bundle=self.bundle,
                    source_file=self.source_file,
                    now=self.clock(),
                )
        # Counted once committed: a failed transaction leaves the buffers to retry.
        for outcome in outcomes:
            self.counts.add(outcome)
        self._usage.clear()
        self._tally = None
        self._unwritten = 0
        self._flagged.clear()

    def close(self) -> None:
        self.flush()
