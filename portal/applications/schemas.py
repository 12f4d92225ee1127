"""What the application service takes and gives, independent of HTML forms."""

from __future__ import annotations

from dataclasses import dataclass

from portal.applications.models import UserAgeRange


@dataclass(frozen=True)
class ApplicationDetails:
    """An application as the applicant submitted it, cleaned (``forms.read_application``)."""

    organization_name: str
    website: str
    country: str
    contact_name: str
    contact_email: str
    platform_description: str
    offers_chat: bool
    user_age_range: UserAgeRange
    monthly_active_users: int
    moderation_team_size: int
    escalation_contact: str
    ncmec_esp_id: str | None


@dataclass(frozen=True)
class QueueFilter:
    """A view of the queue: one status, every open one, or all."""

    key: str
    label: str
