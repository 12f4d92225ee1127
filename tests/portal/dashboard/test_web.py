"""The dashboard pages: administrators only (or the contact's link), real SVG
charts with their data tables, the text sharing switch and the e-mailed link.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from portal.applications import service as application_service
from portal.applications.forms import read_application
from portal.db_base import utc_now
from portal.events.service import list_events
from portal.events.tags import EventTag
from portal.magic_links.models import LinkPurpose
from portal.magic_links.service import resolve_link
from portal.mail.service import Postbox
from portal.organisations.models import Organisation
from tests.portal.dashboard.conftest import histogram
from tests.portal.support import APPLICATION, csrf_token, flash_of, link_in, outbox, post_form
from tests.portal.web.test_accessibility import PageAudit

if TYPE_CHECKING:
    from collections.abc import Callable

    from fastapi.testclient import TestClient
    from sqlalchemy.orm import Session

    from portal.licenses.models import License
    from portal.settings import Settings
    from portal.usage.models import UsageDay

BUNDLE = "reference-2026.11.0"


@pytest.fixture
def license_(make_license: Callable[..., License], add_usage: Callable[..., UsageDay]) -> License:
    """A license whose engine reported on three days of the last 30 (and one older)."""
    license_ = make_license("Charted Chat Ltd")
    engine = uuid.uuid4()
    today = utc_now().date()
    for days_ago, scored, flagged, reviewed, grooming in [
        (0, 120, 6, 4, 3),
        (1, 60, 3, 2, 1),
        (5, 30, 0, 0, 0),
        (60, 500, 50, 10, 10),
    ]:
        add_usage(
            license_,
            today - timedelta(days=days_ago),
            engine_id=engine,
            bundle=BUNDLE,
            scored=scored,
            flagged=flagged,
            reviewed=reviewed,
            grooming=grooming,
            not_grooming=reviewed - grooming,
            score_histogram=histogram(b0=scored - flagged, b19=flagged),
        )
    return license_


def _dashboard_url(license_: License) -> str:
    return f"/admin/organisations/{license_.organisation_id}/dashboard"


def _audit(html: str, path: str) -> None:
    page = PageAudit()
    page.feed(html)
    page.check(path)


def test_anonymous_visitors_are_sent_to_the_login(client: TestClient, license_: License) -> None:
    for path in ("/admin/organisations", _dashboard_url(license_)):
        response = client.get(path)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/admin/login?next=")


def test_the_list_links_each_organisation_to_its_dashboard(
    admin_client: TestClient, license_: License
) -> None:
    page = admin_client.get("/admin/organisations")
    assert page.status_code == 200
    row = page.text.split(f'data-organisation="{license_.organisation_id}"', 1)[1].split("</tr>")[0]
    assert f'href="{_dashboard_url(license_)}"' in row
    assert "Charted Chat Ltd" in row
    assert "<td>210</td>" in row  # scored in the last 30 days
    assert "active" in row
    _audit(page.text, "/admin/organisations")


def test_the_dashboard_draws_the_usage_as_svg_with_data_tables(
    admin_client: TestClient, license_: License
) -> None:
    page = admin_client.get(_dashboard_url(license_))
    assert page.status_code == 200
    html = page.text
    _audit(html, "dashboard")
    scored_chart = html.split('id="scored-chart"', 1)[1].split("</svg>", 1)[0]
    assert 'role="img"' in html.split('id="scored-chart"', 1)[0].rsplit("<svg", 1)[1] + scored_chart
    values = [int(value) for value in re.findall(r'<rect[^>]*data-value="(\d+)"', scored_chart)]
    assert len(values) == 30
    assert sorted(value for value in values if value) == [30, 60, 120]
    assert values[-1] == 120  # today is the last bar
    flags_chart = html.split('id="flags-chart"', 1)[1].split("</svg>", 1)[0]
    assert flags_chart.count('class="chart-point chart-point-flagged"') == 30
    assert flags_chart.count("<polyline") == 2
    histogram_chart = html.split('id="histogram-1-chart"', 1)[1].split("</svg>", 1)[0]
    bins = [int(value) for value in re.findall(r'data-value="(\d+)"', histogram_chart)]
    assert bins == histogram(b0=201, b19=9)
    bundles = html.split('id="bundles-table"', 1)[1].split("</table>", 1)[0]
    assert "66.7% (4 of 6)" in bundles  # precision: (grooming + imminent) / reviewed
    assert 'id="total-scored">210<' in html
    assert "<title" in scored_chart
    assert "<desc" in scored_chart
    assert 'style="' not in html  # the CSP forbids inline styles


def test_the_period_selector_widens_the_range(admin_client: TestClient, license_: License) -> None:
    html = admin_client.get(_dashboard_url(license_) + "?days=90").text
    assert 'data-days="90"' in html
    assert 'id="total-scored">710<' in html
    assert '<option value="90" selected>' in html
    html = admin_client.get(_dashboard_url(license_) + "?days=12345").text
    assert 'data-days="30"' in html


def test_an_unknown_organisation_is_404(admin_client: TestClient) -> None:
    assert admin_client.get(f"/admin/organisations/{uuid.uuid4()}/dashboard").status_code == 404
    assert admin_client.get("/admin/organisations/not-an-id/dashboard").status_code == 404


def _text_sharing(session: Session, license_: License) -> bool:
    organisation = session.get(Organisation, license_.organisation_id)
    assert organisation is not None
    session.refresh(organisation)
    return organisation.text_sharing_enabled


def test_text_sharing_needs_its_confirmation_then_switches_and_is_audited(
    admin_client: TestClient, session: Session, license_: License
) -> None:
    url = _dashboard_url(license_)
    action = f"/admin/organisations/{license_.organisation_id}/text-sharing"
    refused = post_form(admin_client, url, action, {"enable": "yes"})
    assert refused.status_code == 422
    assert "Tick the box to confirm" in refused.text
    _audit(refused.text, "dashboard (errors)")
    assert not _text_sharing(session, license_)

    enabled = post_form(admin_client, url, action, {"enable": "yes", "confirm": "yes"})
    assert "Text sharing enabled" in flash_of(admin_client, enabled)
    assert _text_sharing(session, license_)
    page = admin_client.get(url).text
    assert 'id="text-sharing-state" data-enabled="yes"' in page
    assert "Disable text sharing" in page

    again = post_form(admin_client, url, action, {"enable": "yes", "confirm": "yes"})
    assert "already enabled" in flash_of(admin_client, again)

    disabled = post_form(admin_client, url, action, {"enable": "no", "confirm": "yes"})
    assert "Text sharing disabled" in flash_of(admin_client, disabled)
    assert not _text_sharing(session, license_)
    tags = [
        event.tag
        for event in list_events(session, subject_id=str(license_.organisation_id))
        if event.tag.startswith("organisation:text_sharing")
    ]
    assert tags == [
        EventTag.ORGANISATION_TEXT_SHARING_DISABLED,
        EventTag.ORGANISATION_TEXT_SHARING_ENABLED,
    ]
    events = admin_client.get(url).text.split('id="history-title"', 1)[1]
    assert "organisation:text_sharing_enabled" in events


def test_the_posts_need_the_csrf_token(
    admin_client: TestClient, session: Session, license_: License
) -> None:
    admin_client.get(_dashboard_url(license_))
    base = f"/admin/organisations/{license_.organisation_id}"
    sharing = admin_client.post(f"{base}/text-sharing", data={"enable": "yes", "confirm": "yes"})
    link = admin_client.post(f"{base}/dashboard-link", data={"contact_email": "a@b.example"})
    assert sharing.status_code == link.status_code == 403
    assert not _text_sharing(session, license_)


def test_the_contact_gets_a_read_only_dashboard_link(
    admin_client: TestClient, session: Session, initialised: Settings, license_: License
) -> None:
    # The application that got the organisation its license names the contact.
    details = read_application(APPLICATION).data
    assert details is not None
    application = application_service.submit_application(
        session, initialised, Postbox.for_settings(initialised), details
    )
    application.license_id = license_.id
    session.flush()
    url = _dashboard_url(license_)
    page = admin_client.get(url).text
    assert f'value="{APPLICATION["contact_email"]}"' in page.split('id="dashboard-link-form"')[1]

    action = f"/admin/organisations/{license_.organisation_id}/dashboard-link"
    sent = post_form(admin_client, url, action, {"contact_email": APPLICATION["contact_email"]})
    assert "A dashboard link was e-mailed" in flash_of(admin_client, sent)
    message = outbox(initialised.outbox_dir)[-1]
    assert message["To"] == APPLICATION["contact_email"]
    assert "Charted Chat Ltd" in str(message["Subject"])
    path = link_in(message, "/organisations/dashboard/")
    events = list_events(session, tag=EventTag.ORGANISATION_DASHBOARD_LINK_SENT)
    assert events[0].subject_id == str(license_.organisation_id)
    assert events[0].actor == "admin@portal.example"

    admin_client.cookies.clear()  # the contact is not signed in
    for _ in range(2):  # the link works more than once
        contact = admin_client.get(path)
        assert contact.status_code == 200
    html = contact.text
    _audit(html, "contact dashboard")
    assert "<h1>Dashboard of Charted Chat Ltd</h1>" in html
    assert 'id="total-scored">210<' in html
    assert html.count('class="chart-bar chart-bar-scored"') == 30
    assert 'method="post"' not in html  # no administrator's forms, and no sign-out
    assert "text-sharing" not in html
    assert "dashboard-link" not in html
    wider = admin_client.get(path + "?days=365").text
    assert 'id="total-scored">710<' in wider
    assert f'action="{path}"' in wider


def test_unusable_dashboard_links_show_the_link_page(
    admin_client: TestClient, session: Session, initialised: Settings, license_: License
) -> None:
    url = _dashboard_url(license_)
    action = f"/admin/organisations/{license_.organisation_id}/dashboard-link"
    post_form(admin_client, url, action, {"contact_email": "first@chat.example"})
    post_form(admin_client, url, action, {"contact_email": "second@chat.example"})
    admin_client.cookies.clear()  # as the contact, not signed in
    mails = outbox(initialised.outbox_dir)
    withdrawn, current = (link_in(mail, "/organisations/dashboard/") for mail in mails[-2:])
    assert admin_client.get(current).status_code == 200
    for path in (withdrawn, "/organisations/dashboard/nonsense", current + "x"):
        response = admin_client.get(path)
        assert response.status_code == 410
        assert "expired or been used" in response.text
    token = current.rpartition("/")[2]
    link = resolve_link(session, token, LinkPurpose.ORGANISATION_DASHBOARD)
    link.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    session.flush()
    assert admin_client.get(current).status_code == 410


def test_an_administrator_withdraws_the_dashboard_links(
    admin_client: TestClient, session: Session, initialised: Settings, license_: License
) -> None:
    url = _dashboard_url(license_)
    base = f"/admin/organisations/{license_.organisation_id}"
    assert "No dashboard link of Charted Chat Ltd works now." in admin_client.get(url).text
    post_form(admin_client, url, f"{base}/dashboard-link", {"contact_email": "a@chat.example"})
    page = admin_client.get(url).text
    assert re.search(
        r'id="dashboard-link-state">A dashboard link sent to the organisation works until', page
    )
    assert 'id="dashboard-link-withdraw-form"' in page
    # A form of the page, so it needs the page's CSRF token.
    assert admin_client.post(f"{base}/dashboard-link/withdraw").status_code == 403
    path = link_in(outbox(initialised.outbox_dir)[-1], "/organisations/dashboard/")

    withdrawn = post_form(admin_client, url, f"{base}/dashboard-link/withdraw", {})
    assert "The dashboard links sent no longer work." in flash_of(admin_client, withdrawn)
    (event,) = list_events(session, tag=EventTag.ORGANISATION_DASHBOARD_LINKS_WITHDRAWN)
    assert event.subject_id == str(license_.organisation_id)
    assert event.actor == "admin@portal.example"
    assert event.payload == {"links": 1, "reason": "withdrawn by an administrator"}
    page = admin_client.get(url).text
    assert "No dashboard link of Charted Chat Ltd works now." in page
    assert "dashboard-link-withdraw-form" not in page
    assert "organisation:dashboard_links_withdrawn" in page  # in the history

    again = post_form(admin_client, url, f"{base}/dashboard-link/withdraw", {})
    assert "No dashboard link of this organisation works now." in flash_of(admin_client, again)
    assert len(list_events(session, tag=EventTag.ORGANISATION_DASHBOARD_LINKS_WITHDRAWN)) == 1
    admin_client.cookies.clear()  # as the contact
    assert admin_client.get(path).status_code == 410


def test_a_bad_contact_address_is_shown_next_to_its_field(
    admin_client: TestClient, license_: License
) -> None:
    url = _dashboard_url(license_)
    action = f"/admin/organisations/{license_.organisation_id}/dashboard-link"
    response = post_form(admin_client, url, action, {"contact_email": "not an address"})
    assert response.status_code == 422
    assert 'href="#dashboard-link-contact"' in response.text
    assert csrf_token(response)


def test_a_tampered_switch_value_changes_nothing(
    admin_client: TestClient, session: Session, license_: License
) -> None:
    url = _dashboard_url(license_)
    action = f"/admin/organisations/{license_.organisation_id}/text-sharing"
    response = post_form(admin_client, url, action, {"enable": "maybe", "confirm": "yes"})
    assert response.status_code == 422
    assert 'href="#text-sharing-form"' in response.text
    assert not _text_sharing(session, license_)
