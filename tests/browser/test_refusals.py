"""What a person sees when the portal refuses them: a wrong sign-in code, an
administrator page without a session, a form that lost its CSRF field.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import expect

from tests.browser.support import (
    LOGIN_FAILED,
    a_wrong_code,
    an_application,
    fill_application,
    flash,
    heading,
    sign_in,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from tests.browser.support import LivePortal, Screenshots

pytestmark = pytest.mark.browser


def test_a_wrong_code_shows_the_generic_sign_in_error(
    live_portal: LivePortal, page: Page, screenshots: Screenshots
) -> None:
    admin = live_portal.create_admin()
    page.goto("/admin/login")
    sign_in(page, admin, code=a_wrong_code(admin))

    expect(heading(page)).to_have_text("Administrator sign-in")
    expect(page).to_have_title("Error: Administrator sign-in · Vigil")
    summary = page.get_by_role("alert")
    expect(summary.get_by_role("heading", name="There is a problem")).to_be_visible()
    expect(summary).to_contain_text(LOGIN_FAILED)
    # What was typed comes back, except the secrets.
    expect(page.get_by_label("E-mail address")).to_have_value(admin.email)
    expect(page.get_by_label("Password", exact=True)).to_have_value("")
    expect(page.get_by_label("Code from your authenticator app")).to_have_value("")
    expect(page.get_by_role("link", name="Applications")).to_have_count(0)
    screenshots.take(page, "wrong code refused")


def test_an_administrator_page_without_a_session_leads_to_the_sign_in(
    live_portal: LivePortal, page: Page, screenshots: Screenshots
) -> None:
    page.goto("/admin/applications")
    expect(page).to_have_url(f"{live_portal.url}/admin/login?next=/admin/applications")
    expect(heading(page)).to_have_text("Administrator sign-in")
    screenshots.take(page, "sent to the sign-in")

    # Signing in there leads back to the page that was asked for.
    admin = live_portal.create_admin()
    sign_in(page, admin)
    expect(page).to_have_url(f"{live_portal.url}/admin/applications")
    expect(heading(page)).to_have_text("Applications")
    expect(flash(page)).to_have_text(f"Signed in as {admin.email}.")
    screenshots.take(page, "back at the queue")


def test_a_form_without_its_csrf_field_is_refused(
    live_portal: LivePortal, page: Page, screenshots: Screenshots
) -> None:
    application = an_application("Forged Form")
    page.goto("/apply")
    fill_application(page, application)
    removed = page.evaluate(
        """() => {
            const fields = document.querySelectorAll('#apply-form input[name*="csrf"]');
            fields.forEach(field => field.remove());
            return fields.length;
        }"""
    )
    assert removed == 1
    with page.expect_response(lambda response: response.request.method == "POST") as sent:
        page.get_by_role("button", name="Send application").click()

    assert sent.value.status == 403
    expect(heading(page)).to_have_text("Forbidden")
    expect(page.locator("#error-message")).to_have_text(
        "the form has expired or was not sent from this site: reload and retry"
    )
    expect(page.get_by_text("go back, reload the page and send it again")).to_be_visible()
    screenshots.take(page, "form refused")
    # Nothing was submitted: the contact got no e-mail.
    contacts = {message["To"] for message in live_portal.outbox()}
    assert application["contact_email"] not in contacts
