"""Feedback from engines: stored per reviewed conversation, read back for retraining.

- ``receive_feedback`` accepts a batch once (``portal.usage.service`` says how
  every batch is authorised, deduplicated and refused). Each record is
  written with one bulk ``INSERT ... ON CONFLICT (feedback_id) DO UPDATE`` (on
  PostgreSQL from a temporary table the batch is COPYed into, unless none of its ids is
  stored yet, the usual case: then it is COPYed straight into the table): a
  feedback id seen again from the same license replaces the earlier verdict
  (a moderator corrected it; ``received_at`` keeps the first arrival) when its
  ``reviewed_at`` is not earlier than the stored one. Engines send several
  batches at once, so the order they arrive in says nothing: a stale batch that
  arrives late is accepted and changes nothing. A feedback id that belongs to
  another license is refused (422), never overwritten.
- Text comes only with the organisation's consent: a record with ``text``
  when its organisation has not enabled sharing refuses the whole batch
  (``TextSharingDisabledError``, 403); nothing of it is kept.
- ``feedback_policy`` tells an engine whether to offer sharing, and the limits.
- ``feedback_examples`` yields the latest verdict of every feedback id (a corrected
  verdict replaced the row), in a stable order, with the vector decoded.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import psycopg
from psycopg.types.json import set_json_dumps
from pydantic_core import to_json
from sqlalchemy import ARRAY, Uuid, any_, bindparam, null, select, text
from sqlalchemy.orm import Session

from portal.db_base import utc_now
from portal.errors import LicenseNotFoundError, TextSharingDisabledError
from portal.feedback.models import FEEDBACK_TOAST_TUPLE_TARGET, Feedback
from portal.feedback.schemas import FeedbackBatch, FeedbackRow, feedback_rows
from portal.licenses.models import License
from portal.organisations.models import Organisation
from portal.training.feedback import FeedbackExample
from portal.usage.schemas import MAX_RECORDS, BatchAnswer, FeedbackPolicy, problem, raise_problems
from portal.usage.service import (
    BatchKind,
    authorise_report,
    claim_batch,
    previous_batch,
    table_of,
    upsert,
)
from portal.web.security import REPORT_MAX_BODY_BYTES
from scoring_engine.model.vectors import FeatureVector

if TYPE_CHECKING:
    from licensing.leases import VerifiedLease

_REPLACED_ON_CORRECTION = (
    "engine_id",
    "batch_id",
    "bundle",
    "score",
    "threshold",
    "characteristics",
    "verdict",
    "reviewed_at",
    "vector_version",
    "vector_dim",
    "vector_nnz",
    "vector",
    "shared_text",
    "updated_at",
)


def _organisation_of(session: Session, license_id: uuid.UUID) -> tuple[uuid.UUID, bool]:
    """The license's organisation id and whether it enabled text sharing."""
    row = session.execute(
        select(Organisation.id, Organisation.text_sharing_enabled)
        .join(License, License.organisation_id == Organisation.id)
        .where(License.id == license_id)
    ).one_or_none()
    if row is None:
        raise LicenseNotFoundError(f"no license {license_id}")
    return row.id, row.text_sharing_enabled


def feedback_policy(
    session: Session, license_id: uuid.UUID, lease: VerifiedLease
) -> FeedbackPolicy:
    """What the engine may send: text sharing as its organisation set it, and the limits.

    Raises:
        InvalidLeaseTokenError, NotActivatedError: See ``authorise_report``.
    """
    try:
        engine_id = uuid.UUID(lease.claims.engine_id)
    except ValueError:
        engine_id = uuid.UUID(int=0)  # no engine has it: refused as not activated
    authorise_report(session, license_id, lease, engine_id)
    _, text_sharing = _organisation_of(session, license_id)
    return FeedbackPolicy(
        text_sharing=text_sharing, max_records=MAX_RECORDS, max_body_bytes=REPORT_MAX_BODY_BYTES
    )


def _refuse_others(
    session: Session, license_id: uuid.UUID, batch: FeedbackBatch, rows: list[FeedbackRow]
) -> None:
    """Refuse the batch if another license reported one of its feedback ids (looked up by
    primary key: a batch's thousand ids are a thousand index probes, whatever the
    table's size)."""
    ids = [row.feedback_id for row in rows]
    # PostgreSQL: one array parameter (compiling and binding a thousand costs more).
    wanted = (
        Feedback.feedback_id == any_(bindparam("ids", ids, type_=ARRAY(Uuid())))
        if session.get_bind().dialect.name == "postgresql"
        else Feedback.feedback_id.in_(ids)
    )
    owners = dict(
        session.execute(select(Feedback.feedback_id, Feedback.license_id).where(wanted)).all()
    )
    taken = {feedback_id for feedback_id, owner in owners.items() if owner != license_id}
    if taken:
        raise_problems(
            [
                problem(index, "feedback_id", "already reported under another license")
                for index, record in enumerate(batch.records)
                if record.feedback_id in taken
            ]
        )


def _copy(session: Session, table: str, values: list[tuple[Any, ...]]) -> None:
    """On PostgreSQL, copy the rows (values in ``_COLUMNS`` order) into ``table`` (binary
    COPY; the JSON columns' dicts are dumped by the cursor's JSONB dumper with
    ``to_json``, pydantic's encoder: a few times faster than ``json.dumps`` here)."""
    connection = session.connection().connection.driver_connection
    assert isinstance(connection, psycopg.Connection)  # the portal's PostgreSQL driver
    with connection.cursor() as cursor:
        set_json_dumps(to_json, context=cursor)
        if table == _INCOMING:
            cursor.execute(_CREATE_INCOMING)
            # Empty as a commit or rollback leaves it, unless this transaction staged before.
            cursor.execute(f"DELETE FROM {_INCOMING}")  # noqa: S608 - a constant
        with cursor.copy(_COPY_INTO.format(table=table)) as copy:
            copy.set_types(_TYPES)
            for value in values:
                copy.write_row(value)


def _store(
    session: Session,
    license_id: uuid.UUID,
    batch: FeedbackBatch,
    rows: list[FeedbackRow],
    values: list[tuple[Any, ...]],
) -> None:
    """Insert the rows (values in ``_COLUMNS`` order), or replace the verdict of the
    license's rows they correct; refuse the batch if one is another license's.

    On PostgreSQL the rows are first copied straight into the table, in a savepoint: a
    batch of feedback ids none of which is stored (nearly every batch) is then stored
    without looking them up. If one is stored (a correction, or a batch sent at the same
    moment that stored it first) the copy fails, keeping nothing; the ids are then
    checked and the rows upserted.
    """
    if session.get_bind().dialect.name == "postgresql":
        if _copied_as_new(session, values):
            return
        _refuse_others(session, license_id, batch, rows)
        _copy(session, _INCOMING, values)
        session.execute(text(_UPSERT_INCOMING))
        return
    _refuse_others(session, license_id, batch, rows)
    statement = upsert(session, table_of(Feedback))
    statement = statement.on_conflict_do_update(
        index_elements=["feedback_id"],
        set_={name: statement.excluded[name] for name in _REPLACED_ON_CORRECTION},
        where=(Feedback.license_id == statement.excluded.license_id)
        & (Feedback.reviewed_at <= statement.excluded.reviewed_at),
    )
    parameters = [dict(zip(_COLUMNS, value, strict=True)) for value in values]
    for parameter in parameters:
        # SQL NULL, not the JSON document ``null``.
        if parameter["shared_text"] is None:
            parameter["shared_text"] = null()
    session.execute(statement, parameters)


def _copied_as_new(session: Session, values: list[tuple[Any, ...]]) -> bool:
    """Copy the rows straight into the table; False (nothing kept) if one was there."""
    try:
        with session.begin_nested():
            _copy(session, Feedback.__tablename__, values)
    except psycopg.errors.UniqueViolation:
        return False
    return True


# PostgreSQL: the rows are copied into a temporary table of the connection (created once,
# empty between batches; its rows, like the table's, stay in its pages), then upserted
# from it in one statement. Binary COPY costs the
# portal a third of the CPU time of binding 18 parameters per row.
_INCOMING: Final = "feedback_incoming"
# Each column with its PostgreSQL type (binary COPY sends each value in that type's form).
_COLUMN_TYPES: Final = (
    ("feedback_id", "uuid"),
    ("license_id", "uuid"),
    ("organisation_id", "uuid"),
    ("engine_id", "uuid"),
    ("batch_id", "uuid"),
    ("bundle", "varchar"),
    ("score", "float8"),
    ("threshold", "float8"),
    ("characteristics", "jsonb"),
    ("verdict", "varchar"),
    ("reviewed_at", "timestamptz"),
    ("vector_version", "int4"),
    ("vector_dim", "int4"),
    ("vector_nnz", "int4"),
    ("vector", "bytea"),
    ("shared_text", "jsonb"),
    ("received_at", "timestamptz"),
    ("updated_at", "timestamptz"),
)
_COLUMNS: Final = tuple(name for name, _ in _COLUMN_TYPES)
_TYPES: Final = [kind for _, kind in _COLUMN_TYPES]
_CREATE_INCOMING: Final = (
    f"CREATE TEMPORARY TABLE IF NOT EXISTS {_INCOMING}"
    f" (LIKE {Feedback.__tablename__} INCLUDING DEFAULTS)"
    f" WITH (toast_tuple_target = {FEEDBACK_TOAST_TUPLE_TARGET}) ON COMMIT DELETE ROWS"
)
_COPY_INTO: Final = "COPY {table} (" + ", ".join(_COLUMNS) + ") FROM STDIN (FORMAT BINARY)"
_UPSERT_INCOMING: Final = (
    f"INSERT INTO {Feedback.__tablename__} ({', '.join(_COLUMNS)})"  # noqa: S608 - constants
    f" SELECT {', '.join(_COLUMNS)} FROM {_INCOMING}"
    " ON CONFLICT (feedback_id) DO UPDATE SET "
    + ", ".join(f"{name} = excluded.{name}" for name in _REPLACED_ON_CORRECTION)
    + f" WHERE {Feedback.__tablename__}.license_id = excluded.license_id"
    f" AND {Feedback.__tablename__}.reviewed_at <= excluded.reviewed_at"
)


def receive_feedback(
    session: Session,
    license_id: uuid.UUID,
    lease: VerifiedLease,
    batch: FeedbackBatch,
    *,
    now: datetime | None = None,
) -> BatchAnswer:
    """Accept a feedback batch once; a feedback id seen before replaces its verdict.

    Raises:
        InvalidLeaseTokenError, NotActivatedError: See ``authorise_report``.
        BatchConflictError: The batch id is another batch's.
        InvalidBatchError: A record is malformed, or its feedback id is another
            license's (nothing is kept).
        TextSharingDisabledError: A record carries text and the organisation has
            not enabled sharing (nothing is kept).
    """
    now = now or utc_now()
    authorise_report(session, license_id, lease, batch.engine_id)
    duplicate = previous_batch(session, BatchKind.FEEDBACK, batch.batch_id, license_id)
    if duplicate is not None:
        return duplicate
    rows = feedback_rows(batch)
    organisation_id, text_sharing = _organisation_of(session, license_id)
    if not text_sharing and any(row.shared_text is not None for row in rows):
        raise TextSharingDisabledError(
            "this organisation has not enabled text sharing: send feedback without text"
        )
    # In ``_COLUMNS`` order (a tuple per row: COPY writes it as it is).
    values = [
        (
            row.feedback_id,
            license_id,
            organisation_id,
            batch.engine_id,
            batch.batch_id,
            row.bundle,
            row.score,
            row.threshold,
            row.characteristics,
            row.verdict,
            row.reviewed_at,
            row.vector_version,
            row.vector_dim,
            row.vector_nnz,
            row.vector,
            row.shared_text,
            now,
            now,
        )
        for row in rows
    ]
    duplicate = claim_batch(
        session,
        BatchKind.FEEDBACK,
        batch.batch_id,
        license_id=license_id,
        engine_id=batch.engine_id,
        records=len(batch.records),
        now=now,
    )
    if duplicate is not None:
        return duplicate
    if rows:
        _store(session, license_id, batch, rows, values)
    return BatchAnswer(batch_id=batch.batch_id, accepted=len(batch.records))


def feedback_examples(session: Session, *, batch_size: int = 1000) -> Iterator[FeedbackExample]:
    """Every feedback record received, as a training example."""
    query = (
        select(Feedback, Organisation.name)
        .join(Organisation, Organisation.id == Feedback.organisation_id)
        .order_by(Feedback.received_at, Feedback.feedback_id)
        .execution_options(yield_per=batch_size)
    )
    for feedback, organisation in session.execute(query):
        yield FeedbackExample(
            feedback_id=str(feedback.feedback_id),
            organisation=organisation,
            bundle=feedback.bundle,
            verdict=feedback.verdict,
            score=feedback.score,
            vector=FeatureVector.from_bytes(
                feedback.vector,
                dim=feedback.vector_dim,
                nnz=feedback.vector_nnz,
                version=feedback.vector_version,
            ),
        )
