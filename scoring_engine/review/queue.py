"""The review queue: the ``review_items`` table of the engine's local database.

Rules it keeps:

- Only flagged conversations are queued, each with its text and participants (local
  only), its SPEC §3 score line and its feature vector (what feedback sends instead of
  text). ``item_id`` is random (uuid4 hex): it is also the feedback id, so it says nothing
  about the adopter's conversation id.
- One item per (conversation id, bundle). Queuing it again refreshes a pending item (the
  newest text and score are what a moderator should see) and leaves a reviewed one as it
  is (its verdict is about what the moderator read) unless the conversation has grown
  since: then it is reopened, pending again with the new text, its note saying what the
  earlier verdict was. A conversation judged harmless can escalate later, and that must
  reach a moderator.
- A verdict on an item replaces any earlier one and makes its feedback pending again
  (its ``feedback_queued`` row is deleted); only the first verdict is counted in usage (a reopened
  item's next verdict is a new review, and counted).
- Retention: the text of items reviewed more than ``review_retention_days`` ago is deleted
  (``conversation`` NULL, ``text_deleted_at`` set); score, verdict and features stay.
"""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal

from scoring_engine import usage
from scoring_engine.conversation import Conversation
from scoring_engine.errors import BadInputError
from scoring_engine.home import EngineHome
from scoring_engine.localdb import connect, database_path
from scoring_engine.review import Verdict

if TYPE_CHECKING:  # the model stack loads only for commands that score
    from scoring_engine.model.scorer import ConversationScore

MIN_PREFIX: Final = 6
_SURROGATE: Final = re.compile("[\ud800-\udfff]")

Queued = Literal["new", "updated", "reopened", "kept"]


class ReviewError(BadInputError):
    """An unknown, ambiguous or unsuitable review item (exit 2)."""


def isoformat_z(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def storable(text: str) -> str:
    """``text`` as SQLite (and a terminal) can take it: lone surrogates become U+FFFD."""
    return _SURROGATE.sub("\ufffd", text)


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def conversation_document(conversation: Conversation) -> dict[str, Any]:
    """What the queue keeps of a conversation: platform, participants, messages."""
    return {
        "platform": conversation.platform,
        "participants": conversation.participants,
        "messages": [
            {"author": m.author, "text": m.text, "ts": m.ts} for m in conversation.messages
        ],
    }


@dataclass(frozen=True)
class ReviewItem:
    item_id: str
    conversation_id: str
    source_file: str | None
    queued_at: datetime
    bundle: str
    score: float
    threshold: float
    score_line: dict[str, Any]
    conversation: dict[str, Any] | None
    verdict: Verdict | None
    note: str | None
    moderator: str | None
    reviewed_at: datetime | None
    share_text: bool
    text_deleted_at: datetime | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> ReviewItem:
        return cls(
            item_id=row["item_id"],
            conversation_id=row["conversation_id"],
            source_file=row["source_file"],
            queued_at=parse_time(row["queued_at"]),
            bundle=row["bundle"],
            score=float(row["score"]),
            threshold=float(row["threshold"]),
            score_line=json.loads(row["score_line"]),
            conversation=None if row["conversation"] is None else json.loads(row["conversation"]),
            verdict=None if row["verdict"] is None else Verdict(row["verdict"]),
            note=row["note"],
            moderator=row["moderator"],
            reviewed_at=None if row["reviewed_at"] is None else parse_time(row["reviewed_at"]),
            share_text=bool(row["share_text"]),
            text_deleted_at=(
                None if row["text_deleted_at"] is None else parse_time(row["text_deleted_at"])
            ),
        )

    @property
    def characteristics(self) -> dict[str, float]:
        values = self.score_line.get("characteristics") or {}
        return {str(k): float(v) for k, v in values.items()}

    def top_characteristics(self, n: int = 3) -> list[str]:
        ranked = sorted(self.characteristics.items(), key=lambda kv: (-kv[1], kv[0]))
        return [name for name, value in ranked[:n] if value > 0]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [] if self.conversation is None else list(self.conversation.get("messages", []))

    @property
    def participants(self) -> dict[str, dict[str, Any]]:
        return {} if self.conversation is None else dict(self.conversation.get("participants", {}))


def feature_documents(conversations: Sequence[Conversation]) -> list[dict[str, Any]]:
    """The conversations' feature vectors in the feedback encoding (model/vectors.py)."""
    # Imported here: only a run that queues something needs the features again.
    from scoring_engine.model.features import featurize  # noqa: PLC0415
    from scoring_engine.model.vectors import FeatureVector  # noqa: PLC0415

    if not conversations:
        return []
    rows = featurize(conversations).features()
    return [FeatureVector.from_row(rows[i]).to_dict() for i in range(len(conversations))]


def enqueue(
    connection: sqlite3.Connection,
    conversation: Conversation,
    result: ConversationScore,
    *,
    bundle: str,
    source_file: str | None,
    now: datetime,
    features: dict[str, Any] | None = None,
) -> Queued:
    """Queue a flagged conversation (see the module rules for one already queued)."""
    existing = connection.execute(
        "SELECT item_id, verdict, moderator, reviewed_at, note,"
        " json_array_length(conversation, '$.messages') AS n_messages"
        " FROM review_items WHERE conversation_id = ? AND bundle = ?",
        (storable(conversation.id), bundle),
    ).fetchone()
    reopen = existing is not None and existing["verdict"] is not None
    if reopen:
        seen = existing["n_messages"]
        # Text deleted under the retention period: nothing to compare, the verdict stands.
        if seen is None or len(conversation.messages) <= seen:
            return "kept"
    if features is None:
        features = feature_documents([conversation])[0]
    values = {
        "source_file": None if source_file is None else storable(source_file),
        "queued_at": isoformat_z(now),
        "score": result.score,
        "threshold": result.threshold,
        "score_line": json.dumps(result.to_dict(), separators=(",", ":")),
        # ASCII JSON: a lone surrogate in the text stays an escape, never a UnicodeError.
        "conversation": json.dumps(conversation_document(conversation)),
        "features": json.dumps(features, separators=(",", ":")),
    }
    if reopen:
        grown = len(conversation.messages) - existing["n_messages"]
        earlier = (
            f"Reopened at {isoformat_z(now)}: {grown} new message{'' if grown == 1 else 's'}"
            f" since the verdict {existing['verdict']} by {existing['moderator'] or 'unknown'}"
            f" at {existing['reviewed_at']}"
        )
        values |= {
            "verdict": None,
            "moderator": None,
            "reviewed_at": None,
            "share_text": 0,
            "note": earlier + (f" (note: {existing['note']})" if existing["note"] else ""),
        }
    elif existing is not None:
        # queued_at stays: the age in the queue is how long it has waited for a moderator.
        del values["queued_at"]
    if existing is not None:
        assignments = ", ".join(f"{column} = :{column}" for column in values)
        connection.execute(
            f"UPDATE review_items SET {assignments} WHERE item_id = :item_id",  # noqa: S608
            {**values, "item_id": existing["item_id"]},
        )
        return "reopened" if reopen else "updated"
    connection.execute(
        "INSERT INTO review_items (item_id, conversation_id, source_file, queued_at, bundle,"
        " score, threshold, score_line, conversation, features) VALUES (:item_id,"
        " :conversation_id, :source_file, :queued_at, :bundle, :score, :threshold,"
        " :score_line, :conversation, :features)",
        {
            **values,
            "item_id": uuid.uuid4().hex,
            "conversation_id": storable(conversation.id),
            "bundle": bundle,
        },
    )
    return "new"


def enqueue_many(
    connection: sqlite3.Connection,
    flagged: Sequence[tuple[Conversation, ConversationScore]],
    *,
    bundle: str,
    source_file: str | None,
    now: datetime,
) -> list[Queued]:
    """Queue a chunk of flagged conversations, featurising them in one batch."""
    features = feature_documents([conversation for conversation, _ in flagged])
    return [
        enqueue(
            connection,
            conversation,
            result,
            bundle=bundle,
            source_file=source_file,
            now=now,
            features=document,
        )
        for (conversation, result), document in zip(flagged, features, strict=True)
    ]


def queue_counts(connection: sqlite3.Connection) -> dict[str, int]:
    """How many items wait for a verdict and how many have one (``status``)."""
    row = connection.execute(
        "SELECT count(*) - count(verdict) AS pending, count(verdict) AS reviewed FROM review_items"
    ).fetchone()
    return {"pending": int(row["pending"]), "reviewed": int(row["reviewed"])}


_LISTED_COLUMNS: Final = (
    "item_id, conversation_id, source_file, queued_at, bundle, score, threshold, score_line,"
    " NULL AS conversation, verdict, note, moderator, reviewed_at, share_text, text_deleted_at"
)


def list_items(
    connection: sqlite3.Connection, *, include_reviewed: bool = False
) -> list[ReviewItem]:
    """Pending items (all with ``include_reviewed``), highest score first, then oldest.

    Without their text (``conversation`` is None): a listing never needs it.
    """
    where = "" if include_reviewed else "WHERE verdict IS NULL"
    rows = connection.execute(
        f"SELECT {_LISTED_COLUMNS} FROM review_items {where}"  # noqa: S608
        " ORDER BY score DESC, queued_at, item_id"
    )
    return [ReviewItem.from_row(row) for row in rows]


def find_item(connection: sqlite3.Connection, reference: str) -> ReviewItem:
    """The item with this id or unique id prefix (at least ``MIN_PREFIX`` characters)."""
    reference = reference.strip().lower()
    if len(reference) < MIN_PREFIX or not all(c in "0123456789abcdef" for c in reference):
        raise ReviewError(
            f"review item id {reference!r}: give the id or at least its first {MIN_PREFIX}"
            " characters (see `vigil-engine review list`)"
        )
    rows = connection.execute(
        "SELECT * FROM review_items WHERE item_id LIKE ? ORDER BY item_id LIMIT 2",
        (reference + "%",),
    ).fetchall()
    if not rows:
        raise ReviewError(f"no review item {reference}")
    if len(rows) > 1:
        raise ReviewError(f"review item id prefix {reference} is ambiguous; give more of it")
    return ReviewItem.from_row(rows[0])


def record_verdict(
    connection: sqlite3.Connection,
    item: ReviewItem,
    verdict: Verdict,
    *,
    note: str | None,
    moderator: str,
    share_text: bool,
    now: datetime,
) -> bool:
    """Store the verdict (replacing an earlier one); True when it is the item's first."""
    first = item.verdict is None
    connection.execute(
        "UPDATE review_items SET verdict = ?, note = ?, moderator = ?, reviewed_at = ?,"
        " share_text = ? WHERE item_id = ?",
        (verdict.value, note, moderator, isoformat_z(now), int(share_text), item.item_id),
    )
    # Its feedback is pending again (the outbox sends the corrected verdict).
    connection.execute(
        "DELETE FROM feedback_queued WHERE seq = (SELECT seq FROM review_items WHERE item_id = ?)",
        (item.item_id,),
    )
    if first:
        usage.record_verdict(
            connection, now.astimezone(UTC).date().isoformat(), item.bundle, verdict
        )
    return first


def purge_expired_text(connection: sqlite3.Connection, retention: timedelta, now: datetime) -> int:
    """Delete the text of items reviewed before ``now - retention``; how many were purged."""
    cutoff = isoformat_z(now - retention)
    cursor = connection.execute(
        "UPDATE review_items SET conversation = NULL, text_deleted_at = ?"
        " WHERE reviewed_at IS NOT NULL AND reviewed_at <= ? AND conversation IS NOT NULL",
        (isoformat_z(now), cutoff),
    )
    return cursor.rowcount


def review_queue_status(home: EngineHome) -> dict[str, int | str]:
    """Pending and reviewed counts for ``status``; zeros (no file made) before any queueing.

    ``status`` shows even a broken engine, so a database it cannot read is an ``error``.
    """
    if not database_path(home).exists():
        return {"pending": 0, "reviewed": 0}
    try:
        with connect(home) as connection:
            return dict(queue_counts(connection))
    except sqlite3.Error as error:
        return {"error": f"local database {database_path(home)}: {error}"}
