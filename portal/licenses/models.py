"""The ``licenses`` table and the license state machine.

A license's id is the ``jti`` of its tokens. Its status moves only along
``ALLOWED_TRANSITIONS``, through ``License.transition``:

- ``active``: tokens verify and the portal serves updates.
- ``suspended``: the portal refuses this license (lease renewal, updates) until
  it is reinstated; engines are not told, so suspension is reversible.
- ``revoked``: final. The id is on the signed revocation list, so engines stop
  at their next check even offline-installed ones receiving a new export.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Final

from sqlalchemy import CheckConstraint, Enum, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.db_base import Base, JSONDocument, utc_now
from portal.errors import LicenseStateError

if TYPE_CHECKING:
    from portal.organisations.models import Organisation


class LicenseStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    REVOKED = "revoked"


ALLOWED_TRANSITIONS: Final[dict[LicenseStatus, frozenset[LicenseStatus]]] = {
    LicenseStatus.ACTIVE: frozenset({LicenseStatus.SUSPENDED, LicenseStatus.REVOKED}),
    LicenseStatus.SUSPENDED: frozenset({LicenseStatus.ACTIVE, LicenseStatus.REVOKED}),
    LicenseStatus.REVOKED: frozenset(),
}


class License(Base):
    __tablename__ = "licenses"
    __table_args__ = (
        CheckConstraint("max_engines >= 1", name="max_engines_positive"),
        CheckConstraint("expires_at > not_before", name="expires_after_start"),
        # What ``feedback`` refers to, so that its organisation is the license's.
        Index("ux_licenses_id_organisation_id", "id", "organisation_id", unique=True),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        primary_key=True, default=uuid.uuid4, comment="The 'jti' claim of the license's tokens."
    )
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT"), index=True
    )
    organisation: Mapped[Organisation] = relationship(lazy="joined")
    channels: Mapped[list[str]] = mapped_column(
        JSONDocument, comment='Update channels the license may pull, e.g. ["stable"].'
    )
    max_engines: Mapped[int] = mapped_column(comment="How many engines may run on it at once.")
    features: Mapped[list[str]] = mapped_column(
        JSONDocument, default=list, comment="Optional engine features the license enables."
    )
    issued_at: Mapped[datetime] = mapped_column(default=utc_now, comment="The 'iat' claim.")
    not_before: Mapped[datetime] = mapped_column(comment="The 'nbf' claim.")
    expires_at: Mapped[datetime] = mapped_column(
        index=True, comment="The 'exp' claim; engines add the grace period."
    )
    status: Mapped[LicenseStatus] = mapped_column(
        Enum(
            LicenseStatus,
            name="license_status",
            native_enum=False,
            create_constraint=True,
            length=16,
            values_callable=lambda members: [member.value for member in members],
            validate_strings=True,
        ),
        default=LicenseStatus.ACTIVE,
        index=True,
    )
    status_changed_at: Mapped[datetime] = mapped_column(default=utc_now)
    revoked_at: Mapped[datetime | None] = mapped_column()
    revocation_reason: Mapped[str | None] = mapped_column(
        Text, comment="Why it was revoked; also published on the signed revocation list."
    )
    key_id: Mapped[str] = mapped_column(
        String(64), comment="kid of the license key that signed its latest token."
    )

    def transition(self, new_status: LicenseStatus, *, at: datetime) -> None:
        """Move to ``new_status`` if ``ALLOWED_TRANSITIONS`` allows it.

        Raises:
            LicenseStateError: The move is not allowed from the current status.
        """
        if new_status not in ALLOWED_TRANSITIONS[self.status]:
            raise LicenseStateError(
                f"license {self.id} is {self.status.value}; it cannot become {new_status.value}"
            )
        self.status = new_status
        self.status_changed_at = at

    def __repr__(self) -> str:
        return f"<License {self.id} {self.status.value}>"
