"""The ``organisations`` table."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, String, false
from sqlalchemy.orm import Mapped, mapped_column

from portal.db_base import Base, utc_now


class Organisation(Base):
    __tablename__ = "organisations"

    id: Mapped[uuid.UUID] = mapped_column(
        primary_key=True, default=uuid.uuid4, comment="The 'sub' claim of its licenses."
    )
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    text_sharing_enabled: Mapped[bool] = mapped_column(
        Boolean,
        default=False,
        server_default=false(),
        comment="Whether its engines may send message text with feedback (off by default).",
    )

    def __repr__(self) -> str:
        return f"<Organisation {self.name!r}>"
