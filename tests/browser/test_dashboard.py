"""The organisation dashboard in a real browser: an administrator reads the charts
and their tables, turns text sharing on and e-mails the contact a link, and the
contact opens the read-only dashboard in a browser of their own.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import expect

from portal.db_base import utc_now
from portal.licenses import service as license_service
from portal.organisations.service import get_or_create_organisation
from portal.repository.service import license_signing_key
from portal.usage.models import HISTOGRAM_COLUMNS
from portal.usage.service import add_usage
from tests.browser.support import ACTOR, flash, heading, main_menu, sign_in

if TYPE_CHECKING:
    from collections.abc import Callable

    from playwright.sync_api import Locator, Page

    from tests.browser.support import LivePortal, Screenshots

pytestmark = pytest.mark.browser

ORGANISATION = "Dashboard Journey Chat Ltd"
CONTACT = "ada@dashboard-journey.chat.example"
BUNDLE = "reference-2026.11.0"
# (days ago, scored, flagged, reviewed, grooming): three days of the last 30.
USAGE = [(0, 400, 8, 6, 3), (1, 200, 4, 2, 2), (6, 100, 0, 0, 0)]


def _seed(live_portal: LivePortal) -> None:
    """A licensed organisation whose engine reported three days, added as ingestion adds them."""
    settings = live_portal.settings
    with live_portal.session_factory.begin() as session:
        organisation = get_or_create_organisation(session, ORGANISATION, actor=ACTOR)
        license_ = license_service.issue_license(
            session,
            organisation,
            days=30,
            channels=["stable"],
            max_engines=2,
            signing_key=license_signing_key(settings).key,
            issuer=settings.portal_url,
            actor=ACTOR,
        ).license
        engine_id, today = uuid.uuid4(), utc_now().date()
        for days_ago, scored, flagged, reviewed, grooming in USAGE:
            histogram = [0] * 20
            histogram[0], histogram[19] = scored - flagged, flagged
            add_usage(
                session,
                [
                    {
                        "license_id": license_.id,
                        "engine_id": engine_id,
                        "day": today - timedelta(days=days_ago),
                        "bundle": BUNDLE,
                        "organisation_id": organisation.id,
                        "updated_at": utc_now(),
                        "scored": scored,
                        "flagged": flagged,
                        "reviewed": reviewed,
                        "not_grooming": reviewed - grooming,
                        "grooming": grooming,
                        "imminent_threat": 0,
                        **dict(zip(HISTOGRAM_COLUMNS, histogram, strict=True)),
                    }
                ],
            )


def _bar_heights(chart: Locator) -> dict[int, float]:
    """The drawn height of each non-empty bar of ``chart``, by the value it shows."""
    heights: dict[int, float] = chart.locator("rect.chart-bar").evaluate_all(
        """bars => Object.fromEntries(bars
            .filter(bar => Number(bar.dataset.value) > 0)
            .map(bar => [bar.dataset.value, bar.getBoundingClientRect().height]))"""
    )
    return {int(value): height for value, height in heights.items()}


def _check_charts(page: Page) -> None:
    """The charts draw the seeded numbers, and their tables say the same."""
    scored = page.get_by_role("img", name=re.compile(r"^Conversations scored per day"))
    expect(scored).to_be_visible()
    expect(scored.locator("rect.chart-bar")).to_have_count(30)
    heights = _bar_heights(scored)
    assert sorted(heights) == [100, 200, 400]
    assert heights[400] == pytest.approx(2 * heights[200], rel=0.02)
    assert heights[200] == pytest.approx(2 * heights[100], rel=0.02)
    flags = page.get_by_role("img", name=re.compile(r"^Conversations flagged and reviewed"))
    expect(flags.locator("circle.chart-point-flagged")).to_have_count(30)
    expect(flags.locator("polyline")).to_have_count(2)
    histogram = page.get_by_role("img", name=re.compile(rf"^Score distribution of bundle {BUNDLE}"))
    expect(histogram.locator("rect.chart-bar")).to_have_count(20)
    verdicts = page.get_by_role("img", name=re.compile(r"^Moderators' verdicts"))
    expect(verdicts.locator("rect[data-verdict]")).to_have_count(2)  # no imminent threat

    page.get_by_text("Daily numbers as a table").click()
    today = utc_now().date().isoformat()
    row = page.locator("#daily-table").get_by_role("row").filter(has_text=today)
    expect(row.get_by_role("cell")).to_have_text(["400", "8", "6"])
    bundles = page.locator("#bundles-table").get_by_role("row").filter(has_text=BUNDLE)
    expect(bundles.locator("td.precision")).to_have_text("62.5% (5 of 8)")
    expect(page.locator("#total-scored")).to_have_text("700")


def test_admin_reads_the_dashboard_switches_text_sharing_and_sends_the_contact_a_link(
    live_portal: LivePortal, new_page: Callable[..., Page], screenshots: Screenshots
) -> None:
    _seed(live_portal)
    admin = live_portal.create_admin()
    page = new_page()
    page.goto("/admin/login")
    sign_in(page, admin)
    main_menu(page).get_by_role("link", name="Organisations").click()
    expect(heading(page)).to_have_text("Organisations")
    page.get_by_role("row").filter(has_text=ORGANISATION).get_by_role(
        "link", name=ORGANISATION
    ).click()
    expect(heading(page)).to_have_text(f"Dashboard of {ORGANISATION}")
    _check_charts(page)
    screenshots.take(page, "admin dashboard")

    # Without the confirmation the switch does not move.
    state = page.locator("#text-sharing-state")
    expect(state).to_have_attribute("data-enabled", "no")
    page.get_by_role("button", name="Enable text sharing").click()
    expect(page.get_by_role("alert")).to_contain_text("Tick the box to confirm")
    expect(state).to_have_attribute("data-enabled", "no")
    page.get_by_label(re.compile(r"^I confirm that .* asked for text sharing")).check()
    page.get_by_role("button", name="Enable text sharing").click()
    expect(flash(page)).to_contain_text("Text sharing enabled")
    expect(state).to_have_attribute("data-enabled", "yes")
    expect(page.locator("#history-title ~ table")).to_contain_text(
        "organisation:text_sharing_enabled"
    )
    screenshots.take(page, "text sharing on")

    page.get_by_label("E-mail address").fill(CONTACT)
    page.get_by_role("button", name="Send dashboard link").click()
    expect(flash(page)).to_contain_text(f"A dashboard link was e-mailed to {CONTACT}")
    link = live_portal.link_in(
        live_portal.mail_to(CONTACT, "dashboard"), "/organisations/dashboard/"
    )

    # The contact, in a browser of their own, sees the same charts and no controls.
    contact = new_page()
    contact.goto(link)
    expect(heading(contact)).to_have_text(f"Dashboard of {ORGANISATION}")
    _check_charts(contact)
    expect(contact.locator("form[method=post]")).to_have_count(0)
    expect(contact.get_by_role("button", name="Enable text sharing")).to_have_count(0)
    expect(main_menu(contact).get_by_role("link", name="Organisations")).to_have_count(0)
    contact.get_by_label("Period").select_option(label="Last 90 days")
    contact.get_by_role("button", name="Show").click()
    expect(contact.locator("#period-range")).to_have_attribute("data-days", "90")
    expect(
        contact.get_by_role("img", name=re.compile("^Conversations scored")).locator(
            "rect.chart-bar"
        )
    ).to_have_count(90)
    screenshots.take(contact, "contact dashboard")
    contact.goto(link + "x")
    expect(heading(contact)).to_have_text("Link no longer valid")

    # The administrator withdraws the link: the contact's page stops opening.
    expect(page.locator("#dashboard-link-state")).to_contain_text("works until")
    page.get_by_role("button", name="Withdraw dashboard links").click()
    expect(flash(page)).to_contain_text("The dashboard links sent no longer work.")
    expect(page.locator("#dashboard-link-state")).to_have_text(
        f"No dashboard link of {ORGANISATION} works now."
    )
    expect(page.get_by_role("button", name="Withdraw dashboard links")).to_have_count(0)
    expect(page.locator("#history-title ~ table")).to_contain_text(
        "organisation:dashboard_links_withdrawn"
    )
    contact.goto(link)
    expect(heading(contact)).to_have_text("Link no longer valid")
