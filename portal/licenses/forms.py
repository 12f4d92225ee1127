"""The administrators' license forms: suspend, revoke, renew, send a download link."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from portal.forms import FormOutcome, FormReader
from portal.licenses.service import MAX_DAYS

if TYPE_CHECKING:
    from collections.abc import Mapping


def read_reason(values: Mapping[str, str], label: str) -> FormOutcome[str]:
    form = FormReader(values)
    reason = form.text("reason", label, max_length=1000, multiline=True)
    return FormOutcome(reason if form.ok else None, form.errors, form.values)


@dataclass(frozen=True)
class Renewal:
    days: int
    contact_email: str | None


def read_renewal(values: Mapping[str, str], *, default_days: int) -> FormOutcome[Renewal]:
    form = FormReader({"days": str(default_days), **{k: v for k, v in values.items() if v.strip()}})
    days = form.integer("days", "the number of days", minimum=1, maximum=MAX_DAYS)
    contact = None
    if form.values.get("contact_email", "").strip():
        contact = form.email("contact_email", "the contact's e-mail address")
    if days is None or not form.ok:
        return FormOutcome(None, form.errors, form.values)
    return FormOutcome(Renewal(days, contact), {}, form.values)


def read_contact(values: Mapping[str, str]) -> FormOutcome[str]:
    form = FormReader(values)
    contact = form.email("contact_email", "the contact's e-mail address")
    return FormOutcome(contact if form.ok else None, form.errors, form.values)
