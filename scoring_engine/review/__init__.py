"""The moderators' review queue (SPEC §4 ``review``): flagged conversations and verdicts.

:mod:`scoring_engine.review.queue` owns the ``review_items`` table of the local database;
:mod:`scoring_engine.review.cybertip` drafts a CyberTipline-style report of a reviewed item.
"""

from __future__ import annotations

from enum import StrEnum


class Verdict(StrEnum):
    """A moderator's decision on a flagged conversation (also a ``usage_days`` column)."""

    NOT_GROOMING = "not_grooming"
    GROOMING = "grooming"
    IMMINENT_THREAT = "imminent_threat"


__all__ = ["Verdict"]
