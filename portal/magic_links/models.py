"""The ``magic_links`` table.

A link's token is ``SELECTOR.VERIFIER``: the selector is the row's key, the
verifier is stored only as its SHA-256 and compared in constant time, so a
database reader cannot rebuild a working link and a lookup's timing says
nothing about the secret part.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Enum, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from portal.db_base import Base, utc_now


class LinkPurpose(StrEnum):
    APPLICATION_STATUS = "application_status"
    LICENSE_DOWNLOAD = "license_download"
    ADMIN_INVITATION = "admin_invitation"
    ORGANISATION_DASHBOARD = "organisation_dashboard"


class MagicLink(Base):
    __tablename__ = "magic_links"
    __table_args__ = (
        Index("ix_magic_links_subject", "purpose", "subject_id"),
        {"comment": "E-mailed links; only a hash of each token's secret part is kept."},
    )

    id: Mapped[str] = mapped_column(
        String(32), primary_key=True, comment="The token's public selector part."
    )
    verifier_sha256: Mapped[str] = mapped_column(
        String(64), comment="Hex SHA-256 of the token's secret part."
    )
    purpose: Mapped[LinkPurpose] = mapped_column(
        Enum(
            LinkPurpose,
            name="link_purpose",
            native_enum=False,
            create_constraint=True,
            length=32,
            values_callable=lambda members: [member.value for member in members],
            validate_strings=True,
        )
    )
    subject_id: Mapped[str] = mapped_column(
        String(64), comment="What the link opens: an application, license or admin id."
    )
    one_time: Mapped[bool] = mapped_column(comment="Consumed by its first use.")
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    expires_at: Mapped[datetime] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column(
        comment="When a one-time link was used, or when it was withdrawn."
    )

    def __repr__(self) -> str:
        return f"<MagicLink {self.purpose.value} {self.subject_id}>"
