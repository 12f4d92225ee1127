"""The body of ``POST /api/v1/feedback`` (docs/feedback.md), validated like usage batches
(``portal.usage.schemas``: one pydantic pass, then plain Python).

A record: ``feedback_id`` (the engine's random review item id), ``bundle``,
``score`` and ``threshold`` in [0, 1], ``characteristics`` (name to [0, 1], at
most ``MAX_CHARACTERISTICS``), ``verdict``, ``reviewed_at`` (ISO 8601 with a
zone), ``features`` (``FeatureVector.to_dict()`` of ``scoring_engine.model.vectors``:
its members typed and bounded here with the engine's limits, its data decoded
and checked by ``FeatureVector.from_bytes``; the received zlib bytes are what
is stored) and ``text``: null,
or ``{"messages": [{"author", "text"}]}`` when the moderator confirmed sharing
it (only ``author`` and ``text`` of each message are kept).

A feedback id twice in one batch is one record: the later one wins, as a
later batch's would.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Final

from pydantic import AwareDatetime, Field, StringConstraints, field_validator, model_validator

from portal.usage.schemas import (
    MAX_RECORDS,
    BundleName,
    Problem,
    StrictMember,
    Verdict,
    problem,
    raise_problems,
)
from scoring_engine.model.vectors import (
    ENCODING,
    MAX_ENCODED_CHARS,
    MAX_NNZ,
    FeatureVector,
    VectorFormatError,
)

MAX_CHARACTERISTICS: Final = 64
MAX_SHARED_MESSAGES: Final = 10_000
# Stored as received when no longer than this over its decoded size; else re-encoded,
# so trailing bytes after the zlib stream are never kept.
_VECTOR_SLACK_BYTES: Final = 1024

Probability = Annotated[float, Field(strict=True, ge=0.0, le=1.0, allow_inf_nan=False)]
CharacteristicName = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$")
]


class WireVector(StrictMember):
    """``FeatureVector.to_dict()``: its members checked here, its data by ``from_bytes``."""

    version: Annotated[int, Field(strict=True)]
    dim: Annotated[int, Field(strict=True, gt=0, le=2**24)]
    nnz: Annotated[int, Field(strict=True, ge=0, le=MAX_NNZ)]
    encoding: str
    data: Annotated[str, StringConstraints(max_length=MAX_ENCODED_CHARS)]

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        if value != ENCODING:
            raise ValueError(f"must be {ENCODING!r}")
        return value

    @model_validator(mode="after")
    def _nnz_within_dim(self) -> WireVector:
        if self.nnz > self.dim:
            raise ValueError("nnz must not exceed dim")
        return self


class SharedMessage(StrictMember):
    author: Annotated[str, StringConstraints(max_length=256)]
    text: Annotated[str, StringConstraints(max_length=100_000)]


class SharedText(StrictMember):
    messages: Annotated[list[SharedMessage], Field(max_length=MAX_SHARED_MESSAGES)]


class FeedbackRecord(StrictMember):
    feedback_id: uuid.UUID
    bundle: BundleName
    score: Probability
    threshold: Probability
    characteristics: Annotated[
        dict[CharacteristicName, Probability], Field(max_length=MAX_CHARACTERISTICS)
    ]
    verdict: Verdict
    reviewed_at: AwareDatetime
    features: WireVector
    text: SharedText | None = None


class FeedbackBatch(StrictMember):
    batch_id: uuid.UUID
    engine_id: uuid.UUID
    records: Annotated[list[FeedbackRecord], Field(max_length=MAX_RECORDS)]


@dataclass(frozen=True)
class FeedbackRow:
    """One record as stored: the vector checked and in its storage form."""

    feedback_id: uuid.UUID
    bundle: str
    score: float
    threshold: float
    characteristics: dict[str, float]
    verdict: str
    reviewed_at: datetime
    vector_version: int
    vector_dim: int
    vector_nnz: int
    vector: bytes
    shared_text: dict[str, Any] | None


def _vector(features: WireVector) -> tuple[FeatureVector, bytes]:
    try:
        received = base64.b64decode(features.data, validate=True)
    except binascii.Error:
        raise VectorFormatError("features.data: not base64 of zlib data") from None
    vector = FeatureVector.from_bytes(
        received, dim=features.dim, nnz=features.nnz, version=features.version
    )
    # ``from_bytes`` decoded these very bytes to exactly ``nnz`` entries: keeping them
    # saves compressing every vector again.
    if len(received) > 8 * features.nnz + _VECTOR_SLACK_BYTES:
        received = vector.to_bytes()
    return vector, received


def feedback_rows(batch: FeedbackBatch) -> list[FeedbackRow]:
    """The batch's records with their vectors decoded and checked, one per feedback id.

    Raises:
        InvalidBatchError: A feature vector is not in the documented encoding.
    """
    problems: list[Problem] = []
    rows: dict[uuid.UUID, FeedbackRow] = {}
    for index, record in enumerate(batch.records):
        try:
            vector, stored = _vector(record.features)
        except VectorFormatError as error:
            field, _, reason = str(error).partition(": ")
            problems.append(problem(index, field, reason or "invalid"))
            continue
        rows.pop(record.feedback_id, None)  # the later record wins, and keeps its place
        rows[record.feedback_id] = FeedbackRow(
            feedback_id=record.feedback_id,
            bundle=record.bundle,
            score=record.score,
            threshold=record.threshold,
            characteristics=dict(record.characteristics),
            verdict=record.verdict,
            reviewed_at=record.reviewed_at,
            vector_version=vector.version,
            vector_dim=vector.dim,
            vector_nnz=int(vector.indices.size),
            vector=stored,
            shared_text=None if record.text is None else record.text.model_dump(mode="json"),
        )
    raise_problems(problems)
    return list(rows.values())
