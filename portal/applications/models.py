"""The ``applications`` table and its vetting records, and the application state machine.

An application moves only along ``ALLOWED_TRANSITIONS``, through
``Application.transition``::

    submitted ──▶ information_requested ──(applicant replies)──▶ submitted
        │  ╲                 │
        │   ╲──▶ deferred ◀──┘   (deferred ──▶ information_requested | approved | declined)
        ▼
    approved | declined   (final)

- ``submitted``: in the administrators' queue.
- ``information_requested``: waiting for the applicant's reply to a question.
- ``deferred``: an administrator put the decision off; still open.
- ``approved``: the organisation and its license exist (final).
- ``declined``: with a reason the applicant is told (final).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Final

from sqlalchemy import BigInteger, Enum, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.db_base import Base, BigIntegerKey, utc_now
from portal.errors import InvalidTransitionError

if TYPE_CHECKING:
    from portal.admin.models import Admin


def _enum(enum_class: type[StrEnum], name: str, length: int) -> Enum:
    return Enum(
        enum_class,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=length,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


class ApplicationStatus(StrEnum):
    SUBMITTED = "submitted"
    INFORMATION_REQUESTED = "information_requested"
    DEFERRED = "deferred"
    APPROVED = "approved"
    DECLINED = "declined"

    @property
    def label(self) -> str:
        return STATUS_LABELS[self]

    @property
    def is_final(self) -> bool:
        return not ALLOWED_TRANSITIONS[self]


STATUS_LABELS: Final = {
    ApplicationStatus.SUBMITTED: "In the review queue",
    ApplicationStatus.INFORMATION_REQUESTED: "Waiting for the applicant",
    ApplicationStatus.DEFERRED: "Deferred",
    ApplicationStatus.APPROVED: "Approved",
    ApplicationStatus.DECLINED: "Declined",
}

ALLOWED_TRANSITIONS: Final[dict[ApplicationStatus, frozenset[ApplicationStatus]]] = {
    ApplicationStatus.SUBMITTED: frozenset(
        {
            ApplicationStatus.INFORMATION_REQUESTED,
            ApplicationStatus.DEFERRED,
            ApplicationStatus.APPROVED,
            ApplicationStatus.DECLINED,
        }
    ),
    ApplicationStatus.INFORMATION_REQUESTED: frozenset(
        {ApplicationStatus.SUBMITTED, ApplicationStatus.DEFERRED, ApplicationStatus.DECLINED}
    ),
    ApplicationStatus.DEFERRED: frozenset(
        {
            ApplicationStatus.INFORMATION_REQUESTED,
            ApplicationStatus.APPROVED,
            ApplicationStatus.DECLINED,
        }
    ),
    ApplicationStatus.APPROVED: frozenset(),
    ApplicationStatus.DECLINED: frozenset(),
}


def application_label(application_id: int) -> str:
    return f"A-{application_id:06d}"


class UserAgeRange(StrEnum):
    UNDER_13 = "under_13"
    TEENS = "13_17"
    MIXED = "mixed"
    ADULTS = "18_plus"

    @property
    def label(self) -> str:
        return AGE_RANGE_LABELS[self]

    @property
    def includes_minors(self) -> bool:
        return self is not UserAgeRange.ADULTS


AGE_RANGE_LABELS: Final = {
    UserAgeRange.UNDER_13: "Mostly children under 13",
    UserAgeRange.TEENS: "Mostly teenagers (13 to 17)",
    UserAgeRange.MIXED: "Mixed ages: minors and adults",
    UserAgeRange.ADULTS: "Adults only (18 and over)",
}


class ChecklistItem(StrEnum):
    """What an administrator confirms before approving (each by name, with a note)."""

    OFFERS_CHAT_TO_MINORS = "offers_chat_to_minors"
    ORGANISATION_VERIFIED = "organisation_verified"
    MODERATION_CAPACITY = "moderation_capacity"
    ESCALATION_CONTACT = "escalation_contact"
    TERMS_ACCEPTED = "terms_accepted"

    @property
    def label(self) -> str:
        return CHECKLIST_LABELS[self]


CHECKLIST_LABELS: Final = {
    ChecklistItem.OFFERS_CHAT_TO_MINORS: "Offers chat to minors or to mixed ages",
    ChecklistItem.ORGANISATION_VERIFIED: "Organisation verified (registration, website, contact)",
    ChecklistItem.MODERATION_CAPACITY: "Moderation capacity fits the platform's size",
    ChecklistItem.ESCALATION_CONTACT: "Escalation contact confirmed reachable",
    ChecklistItem.TERMS_ACCEPTED: "Terms of use accepted",
}


class Application(Base):
    __tablename__ = "applications"
    __table_args__ = (
        # The queue: one status, oldest first (admin/applications list).
        Index("ix_applications_queue", "status", "submitted_at", "id"),
        Index("ix_applications_submitted", "submitted_at", "id"),
        {"comment": "Requests for access, as the applicant submitted them, and their vetting."},
    )

    id: Mapped[int] = mapped_column(
        BigIntegerKey,
        primary_key=True,
        autoincrement=True,
        comment="Shown to people as A-000123 (label), the subject id of its events.",
    )
    organization_name: Mapped[str] = mapped_column(String(200))
    website: Mapped[str] = mapped_column(String(500))
    country: Mapped[str] = mapped_column(String(100))
    contact_name: Mapped[str] = mapped_column(String(200))
    contact_email: Mapped[str] = mapped_column(String(254), index=True)
    platform_description: Mapped[str] = mapped_column(Text)
    offers_chat: Mapped[bool] = mapped_column()
    user_age_range: Mapped[UserAgeRange] = mapped_column(_enum(UserAgeRange, "user_age_range", 16))
    monthly_active_users: Mapped[int] = mapped_column(BigInteger)
    moderation_team_size: Mapped[int] = mapped_column()
    escalation_contact: Mapped[str] = mapped_column(Text)
    ncmec_esp_id: Mapped[str | None] = mapped_column(
        String(64), comment="NCMEC Electronic Service Provider id, if the applicant has one."
    )
    terms_accepted_at: Mapped[datetime] = mapped_column(
        comment="When the applicant ticked agree_terms."
    )

    status: Mapped[ApplicationStatus] = mapped_column(
        _enum(ApplicationStatus, "application_status", 32), default=ApplicationStatus.SUBMITTED
    )
    submitted_at: Mapped[datetime] = mapped_column(
        default=utc_now, comment="First submission; the queue's age."
    )
    status_changed_at: Mapped[datetime] = mapped_column(default=utc_now)
    decided_at: Mapped[datetime | None] = mapped_column()
    decided_by: Mapped[str | None] = mapped_column(String(254))
    decision_reason: Mapped[str | None] = mapped_column(
        Text, comment="Why it was declined (the applicant is told) or deferred (internal)."
    )
    organisation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT"), comment="Set on approval."
    )
    license_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("licenses.id", ondelete="RESTRICT"), comment="Set on approval."
    )

    checklist: Mapped[list[ChecklistEntry]] = relationship(
        back_populates="application", order_by="ChecklistEntry.id", cascade="all, delete-orphan"
    )
    notes: Mapped[list[ApplicationNote]] = relationship(
        back_populates="application", order_by="ApplicationNote.id", cascade="all, delete-orphan"
    )
    information_requests: Mapped[list[InformationRequest]] = relationship(
        back_populates="application",
        order_by="InformationRequest.id",
        cascade="all, delete-orphan",
    )

    @property
    def label(self) -> str:
        return application_label(self.id)

    @property
    def open_request(self) -> InformationRequest | None:
        """The question waiting for the applicant's reply, if any."""
        if self.status is not ApplicationStatus.INFORMATION_REQUESTED:
            return None
        pending = [item for item in self.information_requests if item.replied_at is None]
        return pending[-1] if pending else None

    def transition(self, new_status: ApplicationStatus, *, at: datetime) -> None:
        """Move to ``new_status`` if ``ALLOWED_TRANSITIONS`` allows it.

        Raises:
            InvalidTransitionError: The move is not allowed from the current status.
        """
        if new_status not in ALLOWED_TRANSITIONS[self.status]:
            raise InvalidTransitionError(
                f"application {self.label} is {self.status.label.lower()}; "
                f"it cannot become {new_status.label.lower()}"
            )
        self.status = new_status
        self.status_changed_at = at

    def __repr__(self) -> str:
        return f"<Application {self.label} {self.status.value}>"


class ChecklistEntry(Base):
    __tablename__ = "application_checklist"
    __table_args__ = (
        UniqueConstraint("application_id", "item"),
        {"comment": "One vetting checklist item of an application, as last set."},
    )

    id: Mapped[int] = mapped_column(BigIntegerKey, primary_key=True, autoincrement=True)
    application_id: Mapped[int] = mapped_column(
        BigIntegerKey, ForeignKey("applications.id", ondelete="CASCADE")
    )
    application: Mapped[Application] = relationship(back_populates="checklist")
    item: Mapped[ChecklistItem] = mapped_column(_enum(ChecklistItem, "checklist_item", 32))
    checked: Mapped[bool] = mapped_column()
    note: Mapped[str] = mapped_column(Text, default="")
    admin_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("admins.id", ondelete="RESTRICT"))
    admin: Mapped[Admin] = relationship(lazy="joined")
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)


class ApplicationNote(Base):
    __tablename__ = "application_notes"
    __table_args__ = ({"comment": "Administrators' private notes; never shown to applicants."},)

    id: Mapped[int] = mapped_column(BigIntegerKey, primary_key=True, autoincrement=True)
    application_id: Mapped[int] = mapped_column(
        BigIntegerKey, ForeignKey("applications.id", ondelete="CASCADE"), index=True
    )
    application: Mapped[Application] = relationship(back_populates="notes")
    admin_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("admins.id", ondelete="RESTRICT"))
    admin: Mapped[Admin] = relationship(lazy="joined")
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class InformationRequest(Base):
    __tablename__ = "information_requests"
    __table_args__ = ({"comment": "Questions to the applicant and their replies."},)

    id: Mapped[int] = mapped_column(BigIntegerKey, primary_key=True, autoincrement=True)
    application_id: Mapped[int] = mapped_column(
        BigIntegerKey, ForeignKey("applications.id", ondelete="CASCADE"), index=True
    )
    application: Mapped[Application] = relationship(back_populates="information_requests")
    question: Mapped[str] = mapped_column(Text)
    asked_by_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("admins.id", ondelete="RESTRICT"))
    asked_by: Mapped[Admin] = relationship(lazy="joined")
    asked_at: Mapped[datetime] = mapped_column(default=utc_now)
    reply: Mapped[str | None] = mapped_column(Text)
    replied_at: Mapped[datetime | None] = mapped_column()
