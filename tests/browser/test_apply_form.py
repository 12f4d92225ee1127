"""The application form as an applicant meets it: errors next to the fields, what
was typed kept, and no JavaScript needed.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import expect

from tests.browser.support import (
    AGE_RANGE_LABEL,
    OFFERS_CHAT_LEGEND,
    TERMS_LABEL,
    TEXT_FIELD_LABELS,
    an_application,
    fill_application,
    flash,
    heading,
    main_menu,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from playwright.sync_api import Page

    from tests.browser.support import LivePortal, Screenshots

pytestmark = pytest.mark.browser


def test_missing_fields_are_shown_and_what_was_typed_is_kept(
    live_portal: LivePortal, page: Page, screenshots: Screenshots
) -> None:
    application = an_application("Half Filled")
    typed = {
        name: application[name]
        for name in ("organization_name", "contact_name", "contact_email", "platform_description")
    }
    page.goto("/apply")
    fill_application(page, {**typed, "offers_chat": "Yes", "monthly_active_users": "lots"})
    page.get_by_role("button", name="Send application").click()

    expect(page).to_have_title("Error: Apply for access · Vigil")
    summary = page.get_by_role("alert")
    expect(summary.get_by_role("heading", name="There is a problem")).to_be_visible()
    field_errors = {
        TEXT_FIELD_LABELS["country"]: "Enter the country where the organisation is registered.",
        TEXT_FIELD_LABELS["website"]: "Enter the organisation's website.",
        AGE_RANGE_LABEL: "Choose the ages of the platform's users.",
        TEXT_FIELD_LABELS["monthly_active_users"]: (
            "Enter the number of monthly active users as a whole number, like 1500."
        ),
        TEXT_FIELD_LABELS["moderation_team_size"]: "Enter the size of the moderation team.",
        TEXT_FIELD_LABELS["escalation_contact"]: (
            "Enter who handles urgent child-safety escalations."
        ),
        TERMS_LABEL: "You must agree to the terms of use to apply.",
    }
    for label, message in field_errors.items():
        expect(summary.get_by_role("link", name=message)).to_be_visible()
        # The error is read out with its field, not only shown near it.
        expect(page.get_by_label(label)).to_have_accessible_description(
            re.compile(re.escape(message))
        )
    screenshots.take(page, "field errors")

    for name, value in typed.items():
        expect(page.get_by_label(TEXT_FIELD_LABELS[name])).to_have_value(value)
    expect(page.get_by_label(TEXT_FIELD_LABELS["monthly_active_users"])).to_have_value("lots")
    group = page.get_by_role("group", name=OFFERS_CHAT_LEGEND)
    expect(group.get_by_label("Yes", exact=True)).to_be_checked()
    expect(page.get_by_label(TERMS_LABEL)).not_to_be_checked()
    # An optional field left empty is no error: only its hint is read out.
    expect(page.get_by_label(TEXT_FIELD_LABELS["ncmec_esp_id"])).to_have_accessible_description(
        "If your organisation reports to the NCMEC CyberTipline."
    )

    # Completing the form sends it.
    fill_application(page, {name: application[name] for name in application if name not in typed})
    page.get_by_role("button", name="Send application").click()
    expect(heading(page)).to_have_text("Application received")
    screenshots.take(page, "corrected and sent")
    assert live_portal.mail_to(application["contact_email"], "received")


def test_applying_works_without_javascript(
    live_portal: LivePortal, new_page: Callable[..., Page], screenshots: Screenshots
) -> None:
    page = new_page(java_script_enabled=False)
    application = an_application("No Script")
    page.goto("/")
    main_menu(page).get_by_role("link", name="Apply for access").click()
    fill_application(page, application)
    page.get_by_role("button", name="Send application").click()

    expect(heading(page)).to_have_text("Application received")
    expect(flash(page)).to_contain_text(application["contact_email"])
    screenshots.take(page, "application received")
    received = live_portal.mail_to(application["contact_email"], "received")
    page.goto(live_portal.link_in(received, "/applications/status/"))
    expect(page.locator("#application-status")).to_have_text("In the review queue")
    screenshots.take(page, "status page")
