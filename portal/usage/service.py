"""Usage from engines, what every report batch goes through, and the usage report.

Every batch (usage or feedback, docs/feedback.md), in this order:

1. ``authorise_report``: the lease (already verified against the license keys
   and bound to the bearer's license) names the batch's ``engine_id``, and its
   activation is the engine's current one and still active
   (``NotActivatedError``, 404 ``not_activated``, once it was deactivated).
2. ``previous_batch``: a batch id already accepted from this license is a
   duplicate (answered ``200``, ``accepted: 0``, nothing done), before its
   records are even checked; the same id from another license, or for the
   other kind of batch, is ``BatchConflictError`` (409).
3. The records are checked (``InvalidBatchError``, 422) and the batch id is
   claimed (``INSERT ... ON CONFLICT DO NOTHING``): of two copies sent at
   once, the second waits for the first and is then a duplicate.
4. The records are written in bulk (one statement for the whole batch, no
   row objects). A refusal anywhere rolls the request back: nothing of a
   refused batch is kept.

Usage counts are increments: the records of a batch are summed per (day,
bundle), then added (``add_usage``) to the (license, engine, day, bundle) row of
``usage_days`` and to the organisation's (day, bundle) row of ``usage_rollups``
by the upserts themselves (``ON CONFLICT ... DO UPDATE SET scored =
usage_days.scored + excluded.scored``, and so for every count and histogram
bin), so concurrent batches never lose each other's counts. The license's row
is locked (``SELECT ... FOR UPDATE`` on PostgreSQL) while the stored counts are
read (a sum past ``MAX_COUNT`` refuses the batch) and written; rollup rows are
written in (day, bundle) order, so batches of two licenses of one organisation
wait for each other rather than deadlock.
No text and no user ids exist here to store.

Services never commit; ingesting is not an administrative action and writes
no audit event (the batch's row records it).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import Table, func, select
from sqlalchemy.dialects import postgresql, sqlite

from portal.db_base import utc_now
from portal.engines.models import Activation
from portal.engines.service import active_activation
from portal.errors import (
    BatchConflictError,
    ConfigurationError,
    InvalidLeaseTokenError,
    LicenseNotFoundError,
    NotActivatedError,
    OrganisationNotFoundError,
)
from portal.feedback.models import Feedback
from portal.licenses.models import License
from portal.organisations.models import Organisation
from portal.usage.models import HISTOGRAM_COLUMNS, ReportBatch, UsageDay, UsageRollup
from portal.usage.schemas import (
    MAX_COUNT,
    VERDICTS,
    BatchAnswer,
    UsageBatch,
    UsageIncrement,
    problem,
    raise_problems,
    usage_increments,
)
from scoring_engine.usage import HISTOGRAM_BINS

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.dialects.postgresql import Insert as PostgresInsert
    from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
    from sqlalchemy.orm import Session

    from licensing.leases import VerifiedLease

COUNT_COLUMNS: Final = ("scored", "flagged", "reviewed", *VERDICTS)


class BatchKind(StrEnum):
    USAGE = "usage"
    FEEDBACK = "feedback"


#### What every batch goes through ####


def upsert(session: Session, table: Table) -> PostgresInsert | SqliteInsert:
    """An ``INSERT`` that can take ``ON CONFLICT``, for the session's database."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise ConfigurationError(f"usage and feedback need PostgreSQL or SQLite, not {dialect}")


def table_of(model: type[ReportBatch | UsageDay | UsageRollup | Feedback]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


def authorise_report(
    session: Session, license_id: uuid.UUID, lease: VerifiedLease, engine_id: uuid.UUID
) -> Activation:
    """The activation a report comes from.

    Raises:
        InvalidLeaseTokenError: The lease is another engine's, or of an activation
            that is not the engine's current one.
        NotActivatedError: The engine holds no seat of the license any more.
    """
    if lease.claims.engine_id != str(engine_id):
        raise InvalidLeaseTokenError(
            "the lease was issued to another engine than the batch's engine_id"
        )
    activation = active_activation(session, license_id, engine_id)
    if activation is None:
        raise NotActivatedError(
            "this engine holds no seat of the license (it was deactivated): activate it again"
        )
    if str(activation.id) != lease.claims.activation_id:
        raise InvalidLeaseTokenError(
            "the lease is of an earlier activation of this engine: use its current lease"
        )
    return activation


def previous_batch(
    session: Session, kind: BatchKind, batch_id: uuid.UUID, license_id: uuid.UUID
) -> BatchAnswer | None:
    """The duplicate answer if this license's batch was accepted already, else None.

    Raises:
        BatchConflictError: The id belongs to another license's batch or another kind.
    """
    existing = session.get(ReportBatch, batch_id)
    if existing is None:
        return None
    if existing.license_id != license_id or existing.kind != kind.value:
        raise BatchConflictError(
            "this batch_id was already used for another batch: send it with a new batch_id"
        )
    return BatchAnswer(batch_id=batch_id, accepted=0, duplicate=True)


def claim_batch(
    session: Session,
    kind: BatchKind,
    batch_id: uuid.UUID,
    *,
    license_id: uuid.UUID,
    engine_id: uuid.UUID,
    records: int,
    now: datetime,
) -> BatchAnswer | None:
    """Record the batch as accepted; the duplicate answer if a copy just beat it to it."""
    table = table_of(ReportBatch)
    statement = (
        upsert(session, table)
        .on_conflict_do_nothing(index_elements=["batch_id"])
        .returning(table.c.batch_id)
    )
    claimed = session.execute(
        statement,
        {
            "batch_id": batch_id,
            "kind": kind.value,
            "license_id": license_id,
            "engine_id": engine_id,
            "records": records,
            "received_at": now,
        },
    ).first()
    if claimed is not None:
        return None
    answer = previous_batch(session, kind, batch_id, license_id)
    assert answer is not None  # the conflicting row exists
    return answer


def lock_license(session: Session, license_id: uuid.UUID) -> uuid.UUID:
    """Lock the license's row until the transaction ends; its organisation's id."""
    organisation_id = session.scalars(
        select(License.organisation_id).where(License.id == license_id).with_for_update()
    ).one_or_none()
    if organisation_id is None:
        raise LicenseNotFoundError(f"no license {license_id}")
    return organisation_id


#### Usage ####


def _stored_counts(
    session: Session,
    license_id: uuid.UUID,
    engine_id: uuid.UUID,
    increments: Sequence[UsageIncrement],
) -> dict[tuple[date, str], dict[str, int]]:
    """The counts (not the histograms) of the rows the increments go to, as stored now."""
    wanted = {(item.day, item.bundle) for item in increments}
    stored = session.execute(
        select(
            UsageDay.day,
            UsageDay.bundle,
            *[getattr(UsageDay, name) for name in COUNT_COLUMNS],
        ).where(
            UsageDay.license_id == license_id,
            UsageDay.engine_id == engine_id,
            UsageDay.day.in_({day for day, _ in wanted}),
            UsageDay.bundle.in_({bundle for _, bundle in wanted}),
        )
    )
    return {
        (row.day, row.bundle): {name: getattr(row, name) for name in COUNT_COLUMNS}
        for row in stored
        if (row.day, row.bundle) in wanted
    }


SUMMED_COLUMNS: Final = (*COUNT_COLUMNS, *HISTOGRAM_COLUMNS)


def _add_to(
    session: Session, model: type[UsageDay | UsageRollup], rows: Sequence[dict[str, Any]]
) -> None:
    table = table_of(model)
    statement = upsert(session, table)
    statement = statement.on_conflict_do_update(
        index_elements=[column.name for column in table.primary_key],
        set_={
            **{name: table.c[name] + statement.excluded[name] for name in SUMMED_COLUMNS},
            "updated_at": statement.excluded.updated_at,
        },
    )
    session.execute(statement, rows)


def add_usage(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Add usage increments to ``usage_days`` and to the organisations' ``usage_rollups``.

    Each row names its ``license_id``, ``engine_id``, ``day``, ``bundle``,
    ``organisation_id`` and ``updated_at`` and holds every count and histogram
    column (``SUMMED_COLUMNS``); no two rows share a (license, engine, day,
    bundle). The only writer of both tables: keep it so, or the dashboard (read
    from the rollups) and the usage report (read from ``usage_days``) disagree.
    """
    if not rows:
        return
    _add_to(session, UsageDay, rows)
    rollups: dict[tuple[uuid.UUID, date, str], dict[str, Any]] = {}
    for row in rows:
        key = (row["organisation_id"], row["day"], row["bundle"])
        rollup = rollups.get(key)
        if rollup is None:
            rollups[key] = {
                "organisation_id": key[0],
                "day": key[1],
                "bundle": key[2],
                "updated_at": row["updated_at"],
                **{name: row[name] for name in SUMMED_COLUMNS},
            }
        else:
            rollup["updated_at"] = max(rollup["updated_at"], row["updated_at"])
            for name in SUMMED_COLUMNS:
                rollup[name] += row[name]
    _add_to(session, UsageRollup, [rollups[key] for key in sorted(rollups, key=_rollup_order)])


def _rollup_order(key: tuple[uuid.UUID, date, str]) -> tuple[str, date, str]:
    organisation_id, day, bundle = key
    return (str(organisation_id), day, bundle)


def receive_usage(
    session: Session,
    license_id: uuid.UUID,
    lease: VerifiedLease,
    batch: UsageBatch,
    *,
    now: datetime | None = None,
) -> BatchAnswer:
    """Accept a usage batch once: add its counts to the engine's day rows.

    Raises:
        InvalidLeaseTokenError, NotActivatedError: See ``authorise_report``.
        BatchConflictError: The batch id is another batch's.
        InvalidBatchError: A record is malformed (nothing is kept).
    """
    now = now or utc_now()
    authorise_report(session, license_id, lease, batch.engine_id)
    duplicate = previous_batch(session, BatchKind.USAGE, batch.batch_id, license_id)
    if duplicate is not None:
        return duplicate
    increments = usage_increments(batch, now=now)
    organisation_id = lock_license(session, license_id)
    duplicate = claim_batch(
        session,
        BatchKind.USAGE,
        batch.batch_id,
        license_id=license_id,
        engine_id=batch.engine_id,
        records=len(batch.records),
        now=now,
    )
    if duplicate is not None:
        return duplicate
    if increments:
        stored = _stored_counts(session, license_id, batch.engine_id, increments)
        rows = []
        problems = []
        for increment in increments:
            counts = {name: getattr(increment, name) for name in COUNT_COLUMNS}
            before = stored.get((increment.day, increment.bundle), {})
            if any(before.get(name, 0) + count > MAX_COUNT for name, count in counts.items()):
                problems.append(problem(None, "records", "a day's counts would overflow"))
            rows.append(
                {
                    "license_id": license_id,
                    "engine_id": batch.engine_id,
                    "day": increment.day,
                    "bundle": increment.bundle,
                    "organisation_id": organisation_id,
                    "updated_at": now,
                    **counts,
                    **dict(zip(HISTOGRAM_COLUMNS, increment.score_histogram, strict=True)),
                }
            )
        raise_problems(problems)
        add_usage(session, rows)
    return BatchAnswer(batch_id=batch.batch_id, accepted=len(batch.records))


#### The usage report (``vigil-portal usage show``) ####


@dataclass
class UsageLine:
    """One organisation's engine, bundle and day (summed over its licenses)."""

    organisation: str
    engine_id: str
    hostname: str | None
    bundle: str
    day: date
    scored: int = 0
    flagged: int = 0
    reviewed: int = 0
    verdicts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(VERDICTS, 0))
    score_histogram: list[int] = field(default_factory=lambda: [0] * HISTOGRAM_BINS)


@dataclass(frozen=True, order=True)
class FeedbackLine:
    organisation: str
    bundle: str
    verdict: str
    count: int
    with_text: int


@dataclass(frozen=True)
class UsageReport:
    usage: list[UsageLine]
    feedback: list[FeedbackLine]


def _hostnames(session: Session, organisation_ids: set[uuid.UUID]) -> dict[str, str | None]:
    """Each engine's host name, as its latest activation gave it."""
    rows = session.execute(
        select(Activation.engine_id, Activation.hostname)
        .join(License, License.id == Activation.license_id)
        .where(License.organisation_id.in_(organisation_ids))
        .order_by(Activation.activated_at)
    )
    return {str(row.engine_id): row.hostname for row in rows}


def usage_report(session: Session, *, organisation: str | None = None) -> UsageReport:
    """Usage per organisation, engine, bundle and day, and feedback per organisation,
    bundle and verdict (counts only), ordered by organisation, then day, engine, bundle.

    Raises:
        OrganisationNotFoundError: ``organisation`` names no organisation.
    """
    organisations = select(Organisation.id, Organisation.name)
    if organisation is not None:
        cleaned = " ".join(organisation.split())
        organisations = organisations.where(Organisation.name == cleaned)
    names = {row.id: row.name for row in session.execute(organisations)}
    if organisation is not None and not names:
        raise OrganisationNotFoundError(f"no organisation named {organisation!r}")
    hostnames = _hostnames(session, set(names))

    summed = SUMMED_COLUMNS
    rows = session.execute(
        select(
            UsageDay.organisation_id,
            UsageDay.day,
            UsageDay.engine_id,
            UsageDay.bundle,
            *[func.sum(getattr(UsageDay, name)) for name in summed],
        )
        .where(UsageDay.organisation_id.in_(list(names)))
        .group_by(UsageDay.organisation_id, UsageDay.day, UsageDay.engine_id, UsageDay.bundle)
    )
    lines: dict[tuple[str, date, str, str], UsageLine] = {}
    for organisation_id, day, engine_id, bundle, *sums in rows:
        counts = dict(zip(summed, (int(value) for value in sums), strict=True))
        key = (names[organisation_id], day, str(engine_id), bundle)
        lines[key] = UsageLine(
            organisation=key[0],
            engine_id=key[2],
            hostname=hostnames.get(key[2]),
            bundle=bundle,
            day=day,
            scored=counts["scored"],
            flagged=counts["flagged"],
            reviewed=counts["reviewed"],
            verdicts={verdict: counts[verdict] for verdict in VERDICTS},
            score_histogram=[counts[name] for name in HISTOGRAM_COLUMNS],
        )

    grouped = session.execute(
        select(
            Feedback.organisation_id,
            Feedback.bundle,
            Feedback.verdict,
            func.count().label("received"),
            func.count(Feedback.shared_text).label("with_text"),
        )
        .where(Feedback.organisation_id.in_(list(names)))
        .group_by(Feedback.organisation_id, Feedback.bundle, Feedback.verdict)
    )
    feedback = sorted(
        FeedbackLine(
            organisation=names[row.organisation_id],
            bundle=row.bundle,
            verdict=row.verdict,
            count=row.received,
            with_text=row.with_text,
        )
        for row in grouped
    )
    return UsageReport(usage=[lines[key] for key in sorted(lines)], feedback=feedback)
