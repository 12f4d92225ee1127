"""The application journey in a real browser: two people, the applicant and an
administrator, each in their own browser, with e-mail read from the outbox.
"""

from __future__ import annotations

import json
import zipfile
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import expect

from tests.browser.support import (
    an_application,
    fill_application,
    flash,
    heading,
    jws_part,
    main_menu,
    sign_in,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from playwright.sync_api import Locator, Page

    from tests.browser.support import LivePortal, Screenshots

pytestmark = pytest.mark.browser


def _apply(page: Page, application: dict[str, str], screenshots: Screenshots) -> None:
    page.goto("/")
    main_menu(page).get_by_role("link", name="Apply for access").click()
    expect(heading(page)).to_have_text("Apply for access to Vigil")
    fill_application(page, application)
    screenshots.take(page, "application filled in")
    page.get_by_role("button", name="Send application").click()
    expect(heading(page)).to_have_text("Application received")
    expect(flash(page)).to_contain_text(
        f"We have e-mailed a link to follow its progress to {application['contact_email']}."
    )
    screenshots.take(page, "application received")


def _open_in_queue(page: Page, organisation: str) -> str:
    """From the queue, open the application of ``organisation``; its label (A-000123)."""
    expect(heading(page)).to_have_text("Applications")
    link = page.get_by_role("row").filter(has_text=organisation).get_by_role("link")
    label = link.inner_text()
    link.click()
    expect(heading(page)).to_have_text(f"{label}: {organisation}")
    return label


def _status(page: Page) -> Locator:
    return page.locator("#application-status")


def test_applicant_applies_admin_approves_and_applicant_downloads_license(
    live_portal: LivePortal,
    new_page: Callable[..., Page],
    screenshots: Screenshots,
    tmp_path: Path,
) -> None:
    application = an_application("Approved Journey")
    organisation, contact = application["organization_name"], application["contact_email"]

    # The applicant applies, and follows the link in the confirmation e-mail.
    applicant = new_page()
    _apply(applicant, application, screenshots)
    received = live_portal.mail_to(contact, "received")
    applicant.goto(live_portal.link_in(received, "/applications/status/"))
    expect(heading(applicant)).to_contain_text(organisation)
    expect(_status(applicant)).to_have_attribute("data-status", "submitted")
    expect(_status(applicant)).to_have_text("In the review queue")
    screenshots.take(applicant, "status submitted")

    # An administrator signs in with password and TOTP and finds it in the queue.
    admin = live_portal.create_admin()
    staff = new_page()
    staff.goto("/admin/login")
    expect(heading(staff)).to_have_text("Administrator sign-in")
    sign_in(staff, admin)
    expect(flash(staff)).to_have_text(f"Signed in as {admin.email}.")
    screenshots.take(staff, "queue")
    label = _open_in_queue(staff, organisation)
    assert label in received["Subject"]
    screenshots.take(staff, "application detail")

    # Every checklist item, ticked with a note.
    checklist = staff.locator("ul.checklist > li")
    expect(checklist).to_have_count(5)
    for index in range(5):
        item = checklist.nth(index)
        title = item.get_by_role("heading").inner_text()
        item.get_by_label("Confirmed").check()
        item.get_by_label("Note").fill(f"Seen: {title.lower()}")
        item.get_by_role("button", name="Save").click()
        expect(flash(staff)).to_have_text(f"Checklist: {title} ticked.")
        expect(checklist.nth(index)).to_contain_text(
            f"Confirmed by {admin.email}, ", use_inner_text=True
        )
    expect(staff.get_by_text("Every item is confirmed.")).to_be_visible()
    screenshots.take(staff, "checklist complete")

    # Approval.
    staff.get_by_label("Engines the license allows").fill("2")
    staff.get_by_role("button", name="Approve and issue the license").click()
    expect(flash(staff)).to_have_text(
        "Approved: the license was issued and its download link e-mailed."
    )
    expect(_status(staff)).to_have_text("Approved")
    screenshots.take(staff, "approved")

    # The applicant downloads the license through the link in the approval e-mail.
    approved = live_portal.mail_to(contact, "approved")
    download_link = live_portal.link_in(approved, "/licenses/download/")
    applicant.goto(download_link)
    expect(heading(applicant)).to_have_text(f"Your Vigil license: {organisation}")
    screenshots.take(applicant, "download page")
    with applicant.expect_download() as started:
        applicant.get_by_role("button", name="Download the license and trust root (zip)").click()
    download = started.value
    assert download.suggested_filename.endswith(".zip")
    package_path = tmp_path / download.suggested_filename
    download.save_as(package_path)

    with zipfile.ZipFile(package_path) as package:
        names = package.namelist()
        token = package.read("license.jwt").decode().strip()
        root = json.loads(package.read("root.json"))
        setup = package.read("SETUP.txt").decode()
    assert sorted(names) == ["SETUP.txt", "license.jwt", "root.json"]
    assert jws_part(token, 0)["typ"] == "vigil-license+jwt"
    claims = jws_part(token, 1)
    assert (claims["org_name"], claims["max_engines"]) == (organisation, 2)
    assert root["signed"]["_type"] == "root"
    assert "vigil-engine init --root root.json --license license.jwt" in setup

    # The link worked once.
    applicant.goto(download_link)
    expect(heading(applicant)).to_have_text("Link no longer valid")
    screenshots.take(applicant, "download link used up")


def test_a_question_from_the_administrator_is_answered_on_the_status_page(
    live_portal: LivePortal, new_page: Callable[..., Page], screenshots: Screenshots
) -> None:
    application = an_application("Questioned Journey")
    organisation, contact = application["organization_name"], application["contact_email"]
    applicant = new_page()
    _apply(applicant, application, screenshots)

    # The administrator asks a question.
    admin = live_portal.create_admin()
    staff = new_page()
    staff.goto("/admin/login")
    sign_in(staff, admin)
    _open_in_queue(staff, organisation)
    question = "How many moderators work at night?"
    staff.get_by_label("Question (e-mailed to the applicant)").fill(question)
    staff.get_by_role("button", name="Send question").click()
    expect(flash(staff)).to_have_text(
        "Question sent: the applicant was e-mailed a link to answer it."
    )
    expect(_status(staff)).to_have_text("Waiting for the applicant")
    screenshots.take(staff, "question sent")

    # The applicant sees it on the status page the e-mail links to, and answers.
    asked = live_portal.mail_to(contact, "a question")
    applicant.goto(live_portal.link_in(asked, "/applications/status/"))
    expect(_status(applicant)).to_have_text("Waiting for the applicant")
    expect(applicant.get_by_role("heading", name="A question from the reviewers")).to_be_visible()
    expect(applicant.get_by_text(question)).to_be_visible()
    screenshots.take(applicant, "question on the status page")
    answer = "Two, every night, and an on-call lead."
    applicant.get_by_label("Your answer").fill(answer)
    applicant.get_by_role("button", name="Send answer").click()
    expect(flash(applicant)).to_have_text(
        "Thank you: your answer was sent and your application is back in the review queue."
    )
    expect(_status(applicant)).to_have_text("In the review queue")
    expect(applicant.get_by_role("heading", name="Questions answered")).to_be_visible()
    screenshots.take(applicant, "answer sent")

    # The administrator sees the answer, and the exchange in the history.
    staff.reload()
    expect(_status(staff)).to_have_text("In the review queue")
    questions = staff.locator("dl.exchange")
    expect(questions).to_contain_text(question)
    expect(questions).to_contain_text(answer)
    history = staff.get_by_role("table").filter(has_text="application:submitted")
    expect(
        history.get_by_role("row").filter(has_text="application:information_requested")
    ).to_contain_text(admin.email)
    expect(history.get_by_role("row").filter(has_text="application:replied")).to_contain_text(
        "applicant"
    )
    screenshots.take(staff, "answer in the history")
