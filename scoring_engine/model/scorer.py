"""Scoring: a calibrated probability, ten characteristic ratings and evidence per conversation.

The decision value of the classifier is linear in features that are running sums over
messages (:mod:`scoring_engine.model.features`), so the decision value after every message
is one cumulative sum over per-message contributions; the whole conversation's score is the
last of them. ``first_flag_message`` is the first message after which that running
probability reaches the threshold: computed in the same pass, without rescoring prefixes.

Evidence points at messages by index and never copies their text.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import numpy as np
import numpy.typing as npt

from scoring_engine.conversation import Conversation
from scoring_engine.model.classifier import CalibratedLinearClassifier
from scoring_engine.model.features import (
    DENSE_FEATURES,
    FEATURE_VERSION,
    N_HASH_FEATURES,
    FeatureBatch,
    featurize,
    grouped_cumsum,
)
from scoring_engine.model.lexicon import MINOR_AGES, PHRASE_CHARACTERISTICS

FloatArray = npt.NDArray[np.float64]

# A characteristic's rating is 1 - exp(-strength / RATING_SCALE): one strong phrase gives
# 0.28, three give 0.63, six give 0.86. Ratings describe what the conversation contains;
# the probability is what weighs them.
RATING_SCALE = 3.0
EVIDENCE_PER_CHARACTERISTIC = 3
MAX_EVIDENCE = 15
BATCH_MESSAGES = 50_000


@dataclass(frozen=True, slots=True)
class Evidence:
    message: int
    author: str
    characteristic: str
    weight: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "author": self.author,
            "characteristic": self.characteristic,
            "weight": self.weight,
        }


@dataclass(frozen=True, slots=True)
class ConversationScore:
    """One line of SPEC §3."""

    id: str
    score: float
    flagged: bool
    threshold: float
    characteristics: dict[str, float]
    evidence: list[Evidence]
    first_flag_message: int | None
    bundle: str | None
    n_messages: int = 0
    label: str | None = field(default=None, compare=False)
    source: str | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "score": self.score,
            "flagged": self.flagged,
            "threshold": self.threshold,
            "characteristics": self.characteristics,
            "evidence": [e.to_dict() for e in self.evidence],
            "first_flag_message": self.first_flag_message,
            "bundle": self.bundle,
        }


class GroomingModel:
    """What a model file holds: the fitted classifier and how to read its features."""

    def __init__(
        self,
        classifier: CalibratedLinearClassifier,
        recommended_threshold: float,
        feature_version: int = FEATURE_VERSION,
    ) -> None:
        self.classifier = classifier
        self.recommended_threshold = recommended_threshold
        self.feature_version = feature_version

    @property
    def text_weights(self) -> FloatArray:
        return self.classifier.coef_[:N_HASH_FEATURES]

    @property
    def dense_weights(self) -> FloatArray:
        return self.classifier.coef_[N_HASH_FEATURES:]

    def check_compatible(self) -> None:
        if self.feature_version != FEATURE_VERSION:
            raise ValueError(
                f"model features are version {self.feature_version}; "
                f"this engine computes version {FEATURE_VERSION}"
            )
        if self.classifier.coef_.size != N_HASH_FEATURES + len(DENSE_FEATURES):
            raise ValueError("model weights do not match this engine's feature layout")

    def running_probabilities(self, batch: FeatureBatch) -> FloatArray:
        """Probability after each message of each conversation (rows of the batch)."""
        per_message_text = np.asarray(batch.messages @ self.text_weights).ravel()
        running_text = grouped_cumsum(per_message_text[:, None], batch.offsets)[:, 0]
        positions = np.arange(per_message_text.size) - np.repeat(batch.offsets[:-1], batch.lengths)
        decisions = (
            running_text / np.sqrt(positions + 1.0)
            + batch.per_message_dense @ self.dense_weights
            + self.classifier.intercept_
        )
        return self.classifier.calibrate(decisions)

    def empty_probability(self) -> float:
        return float(self.classifier.calibrate(np.array([self.classifier.intercept_]))[0])

    def score_batch(
        self,
        conversations: Sequence[Conversation],
        *,
        threshold: float | None = None,
        bundle: str | None = None,
    ) -> list[ConversationScore]:
        threshold = self.recommended_threshold if threshold is None else threshold
        batch = featurize(conversations)
        running = self.running_probabilities(batch)
        per_message_text = np.asarray(batch.messages @ self.text_weights).ravel()
        counts = batch.characteristic_counts()
        ratings = 1.0 - np.exp(-counts / RATING_SCALE)
        gaps = batch.dense()[:, DENSE_FEATURES.index("age_disclosure_gap")]
        results = []
        for i, conversation in enumerate(conversations):
            start, end = int(batch.offsets[i]), int(batch.offsets[i + 1])
            if end > start:
                probabilities = running[start:end]
                score = float(probabilities[-1])
                crossed = np.flatnonzero(probabilities >= threshold)
                first_flag = int(crossed[0]) if crossed.size else None
            else:
                score = self.empty_probability()
                first_flag = None
            characteristics = {
                name: round(float(ratings[i, c]), 3)
                for c, name in enumerate(PHRASE_CHARACTERISTICS)
            }
            characteristics["age_disclosure_gap"] = round(float(gaps[i]), 3)
            results.append(
                ConversationScore(
                    id=conversation.id,
                    score=round(score, 4),
                    flagged=score >= threshold,
                    threshold=threshold,
                    characteristics=characteristics,
                    evidence=_evidence(conversation, batch, start, end, per_message_text),
                    first_flag_message=first_flag,
                    bundle=bundle,
                    n_messages=end - start,
                    label=conversation.label,
                    source=conversation.source,
                )
            )
        return results

    def score_stream(
        self,
        conversations: Iterable[Conversation],
        *,
        threshold: float | None = None,
        bundle: str | None = None,
        batch_messages: int = BATCH_MESSAGES,
    ) -> Iterator[ConversationScore]:
        """Score conversations lazily, in input order, a bounded batch at a time."""
        iterator = iter(conversations)
        while True:
            batch: list[Conversation] = []
            size = 0
            for conversation in iterator:
                batch.append(conversation)
                size += len(conversation.messages) + 1
                if size >= batch_messages:
                    break
            if not batch:
                return
            yield from self.score_batch(batch, threshold=threshold, bundle=bundle)


def _evidence(
    conversation: Conversation,
    batch: FeatureBatch,
    start: int,
    end: int,
    per_message_text: FloatArray,
) -> list[Evidence]:
    """The messages that show each characteristic most strongly (indices, never text)."""
    if end == start:
        return []
    hits = batch.characteristic_hits[start:end]
    pull = per_message_text[start:end]
    items: list[tuple[float, float, int, str]] = []
    for c, name in enumerate(PHRASE_CHARACTERISTICS):
        rows = np.flatnonzero(hits[:, c])
        if rows.size == 0:
            continue
        # Strongest phrase first, then the message the model weighs most.
        order = np.lexsort((-pull[rows], -hits[rows, c]))[:EVIDENCE_PER_CHARACTERISTIC]
        items.extend(
            (float(hits[rows[j], c]), float(pull[rows[j]]), int(rows[j]), name) for j in order
        )
    age_rows = batch.age_rows
    first, last = bisect_left(age_rows, start), bisect_left(age_rows, end)
    ages = [(row - start, batch.stated_ages[row]) for row in age_rows[first:last]]
    items.extend(
        (1.0 if age in MINOR_AGES else 0.5, 0.0, index, "age_disclosure_gap")
        for index, age in sorted(ages)[:EVIDENCE_PER_CHARACTERISTIC]
    )
    items.sort(key=lambda item: (-item[0], -item[1], item[2]))
    return [
        Evidence(
            message=index,
            author=conversation.messages[index].author,
            characteristic=name,
            weight=round(weight, 3),
        )
        for weight, _, index, name in islice(items, MAX_EVIDENCE)
    ]
