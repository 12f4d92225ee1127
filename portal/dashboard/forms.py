"""The dashboard's forms: the text sharing switch and the contact's link."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from portal.forms import FormOutcome, FormReader

if TYPE_CHECKING:
    from collections.abc import Mapping


@dataclass(frozen=True)
class TextSharingChange:
    enable: bool


def read_text_sharing(values: Mapping[str, str]) -> FormOutcome[TextSharingChange]:
    """The switch's new position; it moves only with its confirmation ticked."""
    form = FormReader(values)
    enable = form.yes_no("enable", "turn text sharing on?")
    if not form.checkbox("confirm"):
        form.error(
            "confirm",
            "Tick the box to confirm that you understand what changing text sharing means.",
        )
    data = TextSharingChange(enable) if form.ok and enable is not None else None
    return FormOutcome(data, form.errors, form.values)


def read_dashboard_contact(values: Mapping[str, str]) -> FormOutcome[str]:
    form = FormReader(values)
    contact = form.email("contact_email", "the e-mail address to send the link to")
    return FormOutcome(contact if form.ok else None, form.errors, form.values)
