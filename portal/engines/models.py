"""The ``activations`` table: which engines hold a seat of which license.

- An engine names itself with an id it chose (a UUID kept in its home) and
  activates once per license; the row is its seat, and the id of the row is
  the ``jti`` of every lease the engine receives for it.
- A seat is *active* until an administrator deactivates it (or the portal
  reclaims it after its lease lapsed, see ``portal.engines.service``); rows
  are never deleted, so the table is also the history of a license's engines.
- At most one active row per (license, engine): a partial unique index on
  both databases (``WHERE deactivated_at IS NULL``), so an engine deactivated
  and activated again gets a new row.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Final

from sqlalchemy import ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from portal.db_base import Base, utc_now

ACTIVE_ONLY: Final = text("deactivated_at IS NULL")


class Activation(Base):
    __tablename__ = "activations"
    __table_args__ = (
        Index(
            "uq_activations_active_engine",
            "license_id",
            "engine_id",
            unique=True,
            postgresql_where=ACTIVE_ONLY,
            sqlite_where=ACTIVE_ONLY,
        ),
        {"comment": "Engines holding (or having held) a seat of a license."},
    )

    id: Mapped[uuid.UUID] = mapped_column(
        primary_key=True, default=uuid.uuid4, comment="The 'jti' claim of the engine's leases."
    )
    license_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("licenses.id", ondelete="RESTRICT"), index=True
    )
    engine_id: Mapped[uuid.UUID] = mapped_column(
        comment="Chosen by the engine (kept in its home); the 'sub' claim of its leases."
    )
    hostname: Mapped[str | None] = mapped_column(
        String(255), comment="As the engine reported it; for administrators only."
    )
    engine_version: Mapped[str] = mapped_column(String(64))
    activated_at: Mapped[datetime] = mapped_column(default=utc_now)
    last_seen_at: Mapped[datetime] = mapped_column(
        default=utc_now, comment="Last activation or lease renewal."
    )
    lease_expires_at: Mapped[datetime] = mapped_column(comment="The 'exp' of its latest lease.")
    deactivated_at: Mapped[datetime | None] = mapped_column(
        comment="When the seat was freed; null while the engine holds it."
    )
    deactivated_by: Mapped[str | None] = mapped_column(
        String(255),
        comment="An administrator's e-mail, or 'portal:lease-lapsed' for a reclaimed seat.",
    )

    @property
    def is_active(self) -> bool:
        return self.deactivated_at is None

    def __repr__(self) -> str:
        state = "active" if self.is_active else "deactivated"
        return f"<Activation {self.id} engine {self.engine_id} {state}>"
