"""Local usage counts (SPEC §8): the ``usage_days`` table of the local database.

Per UTC day and bundle: conversations scored and flagged, a histogram of their scores in
``HISTOGRAM_BINS`` equal bins over [0, 1], conversations reviewed and the count of each
verdict. Nothing else: no text, no conversation or user ids. Rows hold counts not yet moved
into the outbox (``scoring_engine.outbox``), which sends them as increments.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, Protocol

from scoring_engine.review import Verdict

# Equal bins over [0, 1] (evaluation reports draw their score histograms with the same).
# The portal validates and sums usage with this one definition, and stores a column per
# bin (portal/usage/models.py): another count needs a portal migration.
HISTOGRAM_BINS: Final = 20


class Scored(Protocol):
    @property
    def score(self) -> float: ...

    @property
    def flagged(self) -> bool: ...


def histogram_bin(score: float) -> int:
    return min(max(int(score * HISTOGRAM_BINS), 0), HISTOGRAM_BINS - 1)


@dataclass
class ScoreTally:
    """Counts of one run, kept in memory (constant size) until they are recorded."""

    scored: int = 0
    flagged: int = 0
    histogram: list[int] = field(default_factory=lambda: [0] * HISTOGRAM_BINS)

    def add(self, score: float, *, flagged: bool) -> None:
        self.scored += 1
        self.flagged += int(flagged)
        self.histogram[histogram_bin(score)] += 1

    @classmethod
    def of(cls, scores: Iterable[Scored]) -> ScoreTally:
        tally = cls()
        for result in scores:
            tally.add(result.score, flagged=result.flagged)
        return tally


def _row(connection: sqlite3.Connection, day: str, bundle: str) -> list[int]:
    """The day's histogram, creating the (day, bundle) row if it is new."""
    connection.execute(
        "INSERT INTO usage_days (day, bundle, histogram) VALUES (?, ?, ?)"
        " ON CONFLICT (day, bundle) DO NOTHING",
        (day, bundle, json.dumps([0] * HISTOGRAM_BINS)),
    )
    row = connection.execute(
        "SELECT histogram FROM usage_days WHERE day = ? AND bundle = ?", (day, bundle)
    ).fetchone()
    histogram = json.loads(row["histogram"])
    if not isinstance(histogram, list) or len(histogram) != HISTOGRAM_BINS:
        histogram = [0] * HISTOGRAM_BINS  # pragma: no cover - only a hand-edited database
    return [int(count) for count in histogram]


def record_tally(connection: sqlite3.Connection, day: str, bundle: str, tally: ScoreTally) -> None:
    """Add a run's counts to the (day, bundle) row (inside the caller's transaction)."""
    if tally.scored == 0:
        return
    add_counts(
        connection,
        day,
        bundle,
        scored=tally.scored,
        flagged=tally.flagged,
        histogram=tally.histogram,
    )


def add_counts(
    connection: sqlite3.Connection,
    day: str,
    bundle: str,
    *,
    scored: int,
    flagged: int,
    histogram: list[int],
    reviewed: int = 0,
    verdicts: dict[Verdict, int] | None = None,
) -> None:
    """Add counts to the (day, bundle) row (inside the caller's transaction): a run's, or a
    usage record's put back by ``vigil-engine outbox requeue`` (queuing had emptied it)."""
    verdicts = verdicts or {}
    merged = [a + b for a, b in zip(_row(connection, day, bundle), histogram, strict=True)]
    connection.execute(
        "UPDATE usage_days SET scored = scored + ?, flagged = flagged + ?,"
        " reviewed = reviewed + ?, not_grooming = not_grooming + ?, grooming = grooming + ?,"
        " imminent_threat = imminent_threat + ?, histogram = ? WHERE day = ? AND bundle = ?",
        (
            scored,
            flagged,
            reviewed,
            verdicts.get(Verdict.NOT_GROOMING, 0),
            verdicts.get(Verdict.GROOMING, 0),
            verdicts.get(Verdict.IMMINENT_THREAT, 0),
            json.dumps(merged),
            day,
            bundle,
        ),
    )


def record_scores(
    connection: sqlite3.Connection, day: str, bundle: str, scores: Iterable[Scored]
) -> None:
    """Count scored conversations: scored, flagged and the score histogram."""
    record_tally(connection, day, bundle, ScoreTally.of(scores))


def record_verdict(connection: sqlite3.Connection, day: str, bundle: str, verdict: str) -> None:
    """Count one review and its verdict (only an item's first verdict is counted)."""
    column = Verdict(verdict).value  # a fixed column name, never the caller's text
    _row(connection, day, bundle)
    connection.execute(
        f"UPDATE usage_days SET reviewed = reviewed + 1, {column} = {column} + 1"  # noqa: S608
        " WHERE day = ? AND bundle = ?",
        (day, bundle),
    )
