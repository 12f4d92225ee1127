"""The outbox's unsent batches, and what an operator can do with one the portal refused
(``vigil-engine outbox list|requeue|discard``; docs/feedback.md).

A batch the portal refused itself (400, 413 or 422: it kept nothing of it) stays in the
outbox with the portal's error, and every ``report`` sends it again and exits 1. Its body
never changes (a batch id goes with one body only), so an engine upgrade that would now
build it right does not mend it. The rules:

- ``requeue``: the batch's records go back to where ``report`` queues them from, and the
  batch is deleted, in one transaction: a usage record's counts are added back to its
  (day, bundle) row; a feedback record's reviewed item loses its queued mark, so the next
  ``report`` sends its current verdict, score and vector (and text, if still shared) in
  a new batch under a new id. Nothing is counted twice: the portal kept nothing of the
  refused batch. Refused for a ``409`` (the portal holds another body under that id and
  may have counted it) and for a body whose records cannot be read back (``discard``).
- ``discard``: the batch is deleted; its usage counts and verdicts are not reported (a
  reviewed item is queued again only when its verdict changes).
- Only refused batches qualify: one that waits because the portal was out may already be
  stored there, and goes again under its own id, as it is.
- Both wait for a ``report`` that is running (``EngineHome.report_lock``): it may be
  sending that very batch, which the portal may now accept.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Final

from scoring_engine import localdb
from scoring_engine.errors import BadInputError
from scoring_engine.review import Verdict
from scoring_engine.usage import HISTOGRAM_BINS, add_counts

if TYPE_CHECKING:
    from scoring_engine.home import EngineHome

# The portal may hold another body under this id (it may have counted that one).
CONFLICT: Final = 409


@dataclass(frozen=True)
class OutboxBatch:
    batch_id: str
    kind: str  # usage | feedback
    created_at: str
    records: int
    attempts: int
    last_error: str | None
    refused_status: int | None

    @property
    def refused(self) -> bool:
        return self.refused_status is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Requeued:
    batch: OutboxBatch
    usage_rows: int = 0  # (day, bundle) rows whose counts were added back
    feedback_items: int = 0  # reviewed items to be queued again
    feedback_missing: int = 0  # feedback records whose item is no longer in the queue


_COLUMNS: Final = "batch_id, kind, created_at, records, attempts, last_error, refused_status"


def _batch(row: sqlite3.Row) -> OutboxBatch:
    return OutboxBatch(
        batch_id=row["batch_id"],
        kind=row["kind"],
        created_at=row["created_at"],
        records=int(row["records"]),
        attempts=int(row["attempts"]),
        last_error=row["last_error"],
        refused_status=row["refused_status"],
    )


def unsent(home: EngineHome) -> list[OutboxBatch]:
    """Every batch the portal has not accepted, oldest first (the order ``report`` sends)."""
    with localdb.connect(home, write=False) as connection:
        rows = connection.execute(
            f"SELECT {_COLUMNS} FROM outbox WHERE sent_at IS NULL"  # noqa: S608 - constants
            " ORDER BY created_at, rowid"
        ).fetchall()
    return [_batch(row) for row in rows]


def _refused(connection: sqlite3.Connection, batch_id: str, action: str) -> OutboxBatch:
    row = connection.execute(
        f"SELECT {_COLUMNS}, sent_at FROM outbox WHERE batch_id = ?",  # noqa: S608 - constants
        (batch_id.strip(),),
    ).fetchone()
    if row is None:
        raise BadInputError(f"no batch {batch_id!r} in the outbox (`vigil-engine outbox list`)")
    batch = _batch(row)
    if row["sent_at"] is not None:
        raise BadInputError(
            f"batch {batch.batch_id} was accepted by the portal: nothing to {action}"
        )
    if not batch.refused:
        raise BadInputError(
            f"the portal has not refused batch {batch.batch_id}: `vigil-engine report` sends"
            " it again as it is (it may already be stored there)"
        )
    return batch


def discard(home: EngineHome, batch_id: str) -> OutboxBatch:
    """Delete a refused batch for good (see the module rules).

    Raises:
        BadInputError: No such batch, or not one the portal refused.
    """
    with home.report_lock(), localdb.connect(home) as connection:
        batch = _refused(connection, batch_id, "discard")
        connection.execute("DELETE FROM outbox WHERE batch_id = ?", (batch.batch_id,))
    return batch


def requeue(home: EngineHome, batch_id: str) -> Requeued:
    """Put a refused batch's records back to be queued afresh (see the module rules).

    Raises:
        BadInputError: No such batch, not one the portal refused, refused as a conflict,
            or a body whose records cannot be read back (the error names the record and
            the field).
    """
    with home.report_lock(), localdb.connect(home) as connection:
        batch = _refused(connection, batch_id, "requeue")
        if batch.refused_status == CONFLICT:
            raise BadInputError(
                f"the portal holds another body under batch id {batch.batch_id} (409) and may"
                " have counted it: requeued, its records could count twice; "
                f"`vigil-engine outbox discard {batch.batch_id}` drops it"
            )
        (payload,) = connection.execute(
            "SELECT payload FROM outbox WHERE batch_id = ?", (batch.batch_id,)
        ).fetchone()
        records = _records(batch, payload)
        if batch.kind == "usage":
            outcome = Requeued(batch, usage_rows=_usage_back(connection, batch, records))
        else:
            found = _feedback_back(connection, batch, records)
            outcome = Requeued(batch, feedback_items=found, feedback_missing=len(records) - found)
        connection.execute("DELETE FROM outbox WHERE batch_id = ?", (batch.batch_id,))
    return outcome


def _unreadable(batch: OutboxBatch, where: str) -> BadInputError:
    return BadInputError(
        f"batch {batch.batch_id}: {where}; its records cannot be put back "
        f"(`vigil-engine outbox discard {batch.batch_id}` drops it)"
    )


def _records(batch: OutboxBatch, payload: str) -> list[dict[str, Any]]:
    try:
        document = json.loads(payload)
    except ValueError:
        raise _unreadable(batch, "the stored body is not JSON") from None
    records = document.get("records") if isinstance(document, dict) else None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise _unreadable(batch, "the stored body has no list of records")
    return records


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _count(batch: OutboxBatch, index: int, record: dict[str, Any], field: str) -> int:
    value: Any = record
    for part in field.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if not _is_count(value):
        raise _unreadable(batch, f"record {index}: {field} is not a count")
    return int(value)


def _usage_back(
    connection: sqlite3.Connection, batch: OutboxBatch, records: list[dict[str, Any]]
) -> int:
    for index, record in enumerate(records):
        day, bundle = record.get("day"), record.get("bundle")
        if not isinstance(day, str) or not isinstance(bundle, str):
            raise _unreadable(batch, f"record {index}: day and bundle must be strings")
        histogram = record.get("score_histogram")
        if (
            not isinstance(histogram, list)
            or len(histogram) != HISTOGRAM_BINS
            or not all(_is_count(n) for n in histogram)
        ):
            raise _unreadable(
                batch, f"record {index}: score_histogram is not {HISTOGRAM_BINS} counts"
            )
        add_counts(
            connection,
            day,
            bundle,
            scored=_count(batch, index, record, "scored"),
            flagged=_count(batch, index, record, "flagged"),
            reviewed=_count(batch, index, record, "reviewed"),
            verdicts={v: _count(batch, index, record, f"verdicts.{v.value}") for v in Verdict},
            histogram=histogram,
        )
    return len(records)


def _feedback_back(
    connection: sqlite3.Connection, batch: OutboxBatch, records: list[dict[str, Any]]
) -> int:
    """Unmark the records' reviewed items; how many are still in the queue."""
    item_ids: list[str] = []
    for index, record in enumerate(records):
        feedback_id = record.get("feedback_id")
        if not isinstance(feedback_id, str) or not feedback_id:
            raise _unreadable(batch, f"record {index}: feedback_id is not a string")
        # A uuid4 hex item id is sent in the canonical form (outbox._feedback_id).
        item_ids += [feedback_id, feedback_id.replace("-", "")]
    seqs = [
        row[0]
        for row in connection.execute(
            "SELECT seq FROM review_items WHERE item_id IN (SELECT value FROM json_each(?))",
            (json.dumps(item_ids),),
        )
    ]
    connection.execute(
        "DELETE FROM feedback_queued WHERE seq IN (SELECT value FROM json_each(?))",
        (json.dumps(seqs),),
    )
    return len(seqs)
