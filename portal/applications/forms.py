"""The application form (SPEC §5 field names) and the administrators' vetting forms."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from portal.applications.models import AGE_RANGE_LABELS, ChecklistItem, UserAgeRange
from portal.applications.schemas import ApplicationDetails
from portal.forms import FormOutcome, FormReader

if TYPE_CHECKING:
    from collections.abc import Mapping

# The field names of SPEC §5, in the order the form shows them.
APPLICATION_FIELDS: Final = (
    "organization_name",
    "website",
    "country",
    "contact_name",
    "contact_email",
    "platform_description",
    "offers_chat",
    "user_age_range",
    "monthly_active_users",
    "moderation_team_size",
    "escalation_contact",
    "ncmec_esp_id",
    "agree_terms",
)
AGE_RANGE_CHOICES: Final = {member.value: label for member, label in AGE_RANGE_LABELS.items()}
MAX_USERS: Final = 10_000_000_000
MAX_TEAM: Final = 1_000_000
MAX_LONG_TEXT: Final = 5000
_ESP_ID: Final = re.compile(r"[A-Za-z0-9-]{1,64}")


def read_application(values: Mapping[str, str]) -> FormOutcome[ApplicationDetails]:
    form = FormReader(values)
    organization_name = form.text("organization_name", "the organisation's name")
    website = form.url("website", "the organisation's website")
    country = form.text(
        "country", "the country where the organisation is registered", max_length=100
    )
    contact_name = form.text("contact_name", "the contact person's name")
    contact_email = form.email("contact_email", "the contact person's e-mail address")
    platform_description = form.text(
        "platform_description",
        "a description of the platform",
        max_length=MAX_LONG_TEXT,
        multiline=True,
    )
    offers_chat = form.yes_no("offers_chat", "does the platform offer chat between users?")
    age_range = form.choice("user_age_range", "the ages of the platform's users", AGE_RANGE_CHOICES)
    monthly_active_users = form.integer(
        "monthly_active_users", "the number of monthly active users", minimum=0, maximum=MAX_USERS
    )
    moderation_team_size = form.integer(
        "moderation_team_size", "the size of the moderation team", minimum=0, maximum=MAX_TEAM
    )
    escalation_contact = form.text(
        "escalation_contact",
        "who handles urgent child-safety escalations",
        max_length=1000,
        multiline=True,
    )
    ncmec_esp_id = form.text("ncmec_esp_id", "the NCMEC ESP id", required=False, max_length=64)
    if ncmec_esp_id and not _ESP_ID.fullmatch(ncmec_esp_id):
        form.error("ncmec_esp_id", "An NCMEC ESP id has only letters, digits and hyphens.")
    if not form.checkbox("agree_terms"):
        form.error("agree_terms", "You must agree to the terms of use to apply.")
    if not form.ok or offers_chat is None or monthly_active_users is None:
        return FormOutcome(None, form.errors, form.values)
    if moderation_team_size is None:
        return FormOutcome(None, form.errors, form.values)
    details = ApplicationDetails(
        organization_name=organization_name,
        website=website,
        country=country,
        contact_name=contact_name,
        contact_email=contact_email,
        platform_description=platform_description,
        offers_chat=offers_chat,
        user_age_range=UserAgeRange(age_range),
        monthly_active_users=monthly_active_users,
        moderation_team_size=moderation_team_size,
        escalation_contact=escalation_contact,
        ncmec_esp_id=ncmec_esp_id or None,
    )
    return FormOutcome(details, {}, form.values)


def read_reply(values: Mapping[str, str]) -> FormOutcome[str]:
    form = FormReader(values)
    reply = form.text("reply", "your answer", max_length=MAX_LONG_TEXT, multiline=True)
    return FormOutcome(reply if form.ok else None, form.errors, form.values)


def read_required_text(
    values: Mapping[str, str], name: str, label: str, *, max_length: int = MAX_LONG_TEXT
) -> FormOutcome[str]:
    """One required multi-line field: a decline reason, a question, a note."""
    form = FormReader(values)
    text = form.text(name, label, max_length=max_length, multiline=True)
    return FormOutcome(text if form.ok else None, form.errors, form.values)


def read_optional_text(values: Mapping[str, str], name: str, label: str) -> FormOutcome[str]:
    form = FormReader(values)
    text = form.text(name, label, required=False, max_length=MAX_LONG_TEXT, multiline=True)
    return FormOutcome(text if form.ok else None, form.errors, form.values)


@dataclass(frozen=True)
class ChecklistUpdate:
    item: ChecklistItem
    checked: bool
    note: str


def read_checklist(values: Mapping[str, str]) -> FormOutcome[ChecklistUpdate]:
    form = FormReader(values)
    item = form.choice("item", "a checklist item", {member.value: "" for member in ChecklistItem})
    checked = form.checkbox("checked")
    note = form.text("note", "a note", required=False, max_length=1000, multiline=True)
    if not form.ok:
        return FormOutcome(None, form.errors, form.values)
    return FormOutcome(ChecklistUpdate(ChecklistItem(item), checked, note), {}, form.values)


def read_approval(values: Mapping[str, str], *, max_engines_limit: int) -> FormOutcome[int]:
    """The approval form: how many engines the license allows (default 1)."""
    form = FormReader({"max_engines": "1", **{k: v for k, v in values.items() if v.strip()}})
    engines = form.integer(
        "max_engines", "the number of engines", minimum=1, maximum=max_engines_limit
    )
    return FormOutcome(engines, form.errors, form.values)
