"""The ``bundles`` table: every model bundle published to the update repository.

The repository's signed metadata is the truth engines verify; this table is
the portal's index of it (who published what, when, with which metrics).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Enum, String
from sqlalchemy.orm import Mapped, mapped_column

from portal.db_base import Base, JSONDocument, utc_now


class Channel(StrEnum):
    STABLE = "stable"
    BETA = "beta"


class Bundle(Base):
    __tablename__ = "bundles"
    __table_args__ = (CheckConstraint("length > 0", name="length_positive"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(
        String(64), unique=True, comment="Dotted numbers; names the bundle in export commands."
    )
    channel: Mapped[Channel] = mapped_column(
        Enum(
            Channel,
            name="bundle_channel",
            native_enum=False,
            create_constraint=True,
            length=16,
            values_callable=lambda members: [member.value for member in members],
            validate_strings=True,
        ),
        index=True,
    )
    target_path: Mapped[str] = mapped_column(
        String(255), unique=True, comment="TUF target path, e.g. bundles/stable/NAME-VERSION.tar."
    )
    sha256: Mapped[str] = mapped_column(String(64), comment="Hex SHA-256 of the bundle file.")
    length: Mapped[int] = mapped_column(BigInteger, comment="Size of the bundle file in bytes.")
    created: Mapped[datetime] = mapped_column(comment="When the model was trained (manifest).")
    published_at: Mapped[datetime] = mapped_column(default=utc_now)
    published_by: Mapped[str] = mapped_column(String(255))
    manifest: Mapped[dict[str, Any]] = mapped_column(
        JSONDocument, comment="The bundle's manifest.json, for display (metrics, threshold)."
    )

    @property
    def label(self) -> str:
        """``name-version``, as scores name their bundle (SPEC §3)."""
        return f"{self.name}-{self.version}"

    def __repr__(self) -> str:
        return f"<Bundle {self.label} on {self.channel.value}>"
