"""The body of ``POST /api/v1/feedback`` (docs/feedback.md), validated like usage batches
(``portal.usage.schemas``: one pydantic pass, then plain Python).

A record: ``feedback_id`` (the engine's random review item id), ``bundle``,
``score`` and ``threshold`` in [0, 1], ``characteristics`` (name to [0, 1], at
most ``MAX_CHARACTERISTICS``), ``verdict``, ``reviewed_at`` (ISO 8601 with a
zone), ``features`` (``FeatureVector.to_dict()`` of ``scoring_engine.model.vectors``:
its members typed and bounded here with the engine's limits, its data decoded
and checked by the rules of ``FeatureVector.from_bytes``, which reads it back
for retraining; the received zlib bytes are what is stored) and ``text``: null,
or ``{"messages": [{"author", "text"}]}`` when the moderator confirmed sharing
it (only ``author`` and ``text`` of each message are kept).

A feedback id twice in one batch is one record: the later one wins, as a
later batch's would.
"""

from __future__ import annotations

import uuid
import zlib
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal, NamedTuple, cast, get_args

import numpy as np
import numpy.typing as npt
from isal import isal_zlib
from pydantic import AwareDatetime, ConfigDict, Field, StringConstraints

from portal.usage.schemas import (
    MAX_RECORDS,
    BundleName,
    Problem,
    StrictMember,
    Verdict,
    problem,
    raise_problems,
)
from scoring_engine.model.vectors import ENCODING, MAX_ENCODED_CHARS, MAX_NNZ

MAX_CHARACTERISTICS: Final = 64
MAX_SHARED_MESSAGES: Final = 10_000
# isal's stubs declare its ``error`` an instance; it is the exception class.
_INFLATE_ERROR: Final = cast("type[Exception]", isal_zlib.error)
# Stored as received when no longer than this over its decoded size; else re-encoded,
# so trailing bytes after the zlib stream are never kept.
_VECTOR_SLACK_BYTES: Final = 1024

Probability = Annotated[float, Field(strict=True, ge=0.0, le=1.0, allow_inf_nan=False)]
CharacteristicName = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$")
]


class WireVector(StrictMember):
    """``FeatureVector.to_dict()``: its members checked here, its data by ``from_bytes``.

    ``data`` is decoded from base64 while the JSON is parsed (by pydantic's core, six
    times faster than ``binascii``; it also takes the URL-safe alphabet and leaves
    padding optional, and the bytes are then checked as zlib data).
    """

    model_config = ConfigDict(val_json_bytes="base64")

    version: Annotated[int, Field(strict=True)]
    dim: Annotated[int, Field(strict=True, gt=0, le=2**24)]
    nnz: Annotated[int, Field(strict=True, ge=0, le=MAX_NNZ)]
    encoding: Literal["zlib+le-int32-float32"]
    data: Annotated[bytes, Field(max_length=MAX_ENCODED_CHARS * 3 // 4)]


assert get_args(WireVector.model_fields["encoding"].annotation) == (ENCODING,)


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


class FeedbackRow(NamedTuple):
    """One record as stored: the vector checked and in its storage form (a tuple: a
    thousand are made per batch)."""

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


def _decoded_vectors(records: list[FeedbackRecord]) -> tuple[list[bytes | None], list[Problem]]:
    """Every record's vector data decoded and checked by the rules of
    ``FeatureVector.from_bytes`` (which reads it back for retraining): ``nnz`` not above
    ``dim``; a zlib stream of exactly ``8 * nnz`` bytes, decompressed no further than
    that (by ISA-L: a third less time than zlib's inflate here); indices increasing
    and below ``dim``; values finite. The checks on indices and
    values run once over the whole batch, on its decompressed vectors end to end (a
    thousand small numpy calls cost more than the decompression). Returns the bytes to
    store per record (None if bad).
    """
    stored: list[bytes | None] = []
    problems: dict[int, Problem] = {}
    plains: list[bytes] = []
    owners: list[int] = []
    for index, record in enumerate(records):
        nnz = record.features.nnz
        received = record.features.data
        if nnz > record.features.dim:
            problems[index] = problem(index, "features.nnz", "must not exceed features.dim")
            stored.append(None)
            continue
        try:
            decompressor = isal_zlib.decompressobj()
            plain = decompressor.decompress(received, 8 * nnz + 1)
        except _INFLATE_ERROR:
            problems[index] = problem(index, "features.data", "not zlib data")
            stored.append(None)
            continue
        # Decompressed no further than one byte past the declared size (a zip bomb stops
        # there): a longer stream is that one byte too long.
        if len(plain) != 8 * nnz:
            problems[index] = problem(index, "features.data", "length does not match features.nnz")
            stored.append(None)
            continue
        # Stored as received (no second compression), unless it carries more than
        # the zlib stream could need: then compressed afresh.
        stored.append(
            received if len(received) <= 8 * nnz + _VECTOR_SLACK_BYTES else zlib.compress(plain, 6)
        )
        plains.append(plain)
        owners.append(index)
    for position, reason in _bad_vectors(
        plains,
        np.array([records[index].features.nnz for index in owners], dtype=np.int64),
        np.array([records[index].features.dim for index in owners], dtype=np.int64),
    ):
        index = owners[position]
        problems[index] = problem(index, "features.data", reason)
        stored[index] = None
    return stored, [problems[index] for index in sorted(problems)]


def _bad_vectors(
    plains: list[bytes], nnz: npt.NDArray[np.int64], dims: npt.NDArray[np.int64]
) -> list[tuple[int, str]]:
    """The positions of the decompressed vectors whose indices or values break the rules.

    Each vector is ``nnz`` int32 indices then ``nnz`` float32 values: joined end to end
    they are one array of 4-byte words, in which a mask marks the indices. Two
    neighbouring words that are both indices belong to the same vector (its values
    follow its indices), so "increasing" is one comparison over the whole batch.
    """
    if not plains:
        return []
    words = np.frombuffer(b"".join(plains), dtype="<i4")
    is_index = np.repeat(np.tile(np.array([True, False]), nnz.size), np.repeat(nnz, 2))
    # One bound for the batch when its vectors agree on dim (they do, from one engine).
    bound = dims[0] if (dims == dims[0]).all() else np.repeat(dims, 2 * nnz)
    bad_index = is_index & ((words < 0) | (words >= bound))
    bad_index[1:] |= is_index[1:] & is_index[:-1] & (words[1:] <= words[:-1])
    bad_value = ~is_index & ~np.isfinite(words.view("<f4"))
    ends = np.cumsum(2 * nnz)

    def owners(bad: npt.NDArray[np.bool_]) -> set[int]:
        return set(np.searchsorted(ends, np.flatnonzero(bad), side="right").tolist())

    bad_indices = owners(bad_index)
    bad_values = owners(bad_value) - bad_indices
    return sorted(
        [(position, "indices must be increasing and below dim") for position in bad_indices]
        + [(position, "values must be finite") for position in bad_values]
    )


def feedback_rows(batch: FeedbackBatch) -> list[FeedbackRow]:
    """The batch's records with their vectors decoded and checked, one per feedback id.

    Raises:
        InvalidBatchError: A feature vector is not in the documented encoding.
    """
    stored, problems = _decoded_vectors(batch.records)
    raise_problems(problems)
    rows: dict[uuid.UUID, FeedbackRow] = {}
    for record, vector in zip(batch.records, stored, strict=True):
        assert vector is not None  # every bad one raised above
        rows.pop(record.feedback_id, None)  # the later record wins, and keeps its place
        rows[record.feedback_id] = FeedbackRow(
            feedback_id=record.feedback_id,
            bundle=record.bundle,
            score=record.score,
            threshold=record.threshold,
            characteristics=dict(record.characteristics),
            verdict=record.verdict,
            # In UTC, as stored (a standard zone: cheaper to bind than pydantic's).
            reviewed_at=record.reviewed_at.astimezone(UTC),
            vector_version=record.features.version,
            vector_dim=record.features.dim,
            vector_nnz=record.features.nnz,
            vector=vector,
            shared_text=None if record.text is None else record.text.model_dump(mode="json"),
        )
    return list(rows.values())
