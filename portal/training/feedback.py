"""Moderator feedback as training examples (the continuous-improvement loop).

The portal's feedback service (``portal.feedback.service.feedback_examples``) yields these
from what engines reported; ``vigil-portal models retrain --with-feedback`` adds them to
the base training data. A verdict of ``grooming`` or ``imminent_threat`` is a positive
label, ``not_grooming`` a negative one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from scoring_engine.model.vectors import FeatureVector

POSITIVE_VERDICTS: Final = frozenset({"grooming", "imminent_threat"})
VERDICTS: Final = frozenset({"not_grooming", "grooming", "imminent_threat"})


@dataclass(frozen=True)
class FeedbackExample:
    feedback_id: str
    organisation: str  # the organisation's name, for the model card's counts
    bundle: str  # the bundle that scored it, e.g. "reference-2026.11.0"
    verdict: str
    score: float
    vector: FeatureVector

    @property
    def is_grooming(self) -> bool:
        return self.verdict in POSITIVE_VERDICTS
