"""The ``events`` table: the append-only audit trail.

Append-only is enforced twice: here, by refusing any flush that would update
or delete an ``Event`` and any ORM ``UPDATE``/``DELETE`` statement against the
table; and in the database, by triggers the migration installs (PostgreSQL and
SQLite), so not even raw SQL on another connection can rewrite history.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import CheckConstraint, Index, String, event
from sqlalchemy.orm import Mapped, ORMExecuteState, Session, mapped_column

from portal.db_base import Base, BigIntegerKey, JSONDocument, utc_now

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Mapper


class AppendOnlyError(RuntimeError):
    """Someone tried to change or delete an audit event."""


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        CheckConstraint("tag LIKE '%_:_%'", name="tag_is_subject_action"),
        Index("ix_events_subject", "subject_id", "created_at"),
        {"comment": "Append-only audit trail of administrative and licensing actions."},
    )

    id: Mapped[int] = mapped_column(BigIntegerKey, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(default=utc_now, index=True)
    actor: Mapped[str] = mapped_column(
        String(255),
        comment="Who acted: 'cli:<os user>' for the command line, an admin's email on the web.",
    )
    tag: Mapped[str] = mapped_column(
        String(64), index=True, comment="What happened, shaped subject:action (events/tags.py)."
    )
    subject_id: Mapped[str | None] = mapped_column(
        String(64),
        comment="Id of the object acted on (license id, bundle version...), for its history.",
    )
    payload: Mapped[dict[str, Any]] = mapped_column(
        JSONDocument, default=dict, comment="Small JSON details; never secrets or tokens."
    )

    def __repr__(self) -> str:
        return f"<Event {self.id} {self.tag} by {self.actor}>"


@event.listens_for(Event, "before_update")
def _refuse_update(_mapper: Mapper[Event], _connection: Connection, target: Event) -> None:
    raise AppendOnlyError(f"audit events are append-only; cannot update event {target.id}")


@event.listens_for(Event, "before_delete")
def _refuse_delete(_mapper: Mapper[Event], _connection: Connection, target: Event) -> None:
    raise AppendOnlyError(f"audit events are append-only; cannot delete event {target.id}")


@event.listens_for(Session, "do_orm_execute")
def _refuse_bulk_changes(state: ORMExecuteState) -> None:
    if (state.is_update or state.is_delete) and any(
        mapper.class_ is Event for mapper in state.all_mappers
    ):
        raise AppendOnlyError("audit events are append-only; bulk UPDATE/DELETE refused")
