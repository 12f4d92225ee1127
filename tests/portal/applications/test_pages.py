"""What applicants and administrators see of an application."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.portal.support import APPLICATION, flash_of, link_in, outbox, post_form

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

    from portal.settings import Settings
    from tests.portal.support import AdminAccount


def _apply(client: TestClient, settings: Settings, **changes: str) -> tuple[str, str]:
    """Apply; return the status link and the admin detail URL."""
    post_form(client, "/apply", "/apply", {**APPLICATION, **changes})
    status = link_in(outbox(settings.outbox_dir)[-1], "/applications/status/")
    return status, ""


def _detail_url(client: TestClient) -> str:
    queue = client.get("/admin/applications?status=all").text
    return "/admin/applications/" + queue.split('href="/admin/applications/', 1)[1].split('"', 1)[0]


def test_private_notes_never_reach_the_applicant(
    client: TestClient, admin_account: AdminAccount, initialised: Settings
) -> None:
    status, _ = _apply(client, initialised)
    admin_account.sign_in(client)
    detail = _detail_url(client)
    added = post_form(client, detail, f"{detail}/notes", {"note": "Director seems evasive."})
    assert "Note added" in flash_of(client, added)
    assert "Director seems evasive." in client.get(detail).text
    assert "Director seems evasive." not in client.get(status).text
    for message in outbox(initialised.outbox_dir):
        assert "evasive" not in message.as_string()


def test_a_declined_applicant_is_told_why(
    client: TestClient, admin_account: AdminAccount, initialised: Settings
) -> None:
    status, _ = _apply(client, initialised)
    admin_account.sign_in(client)
    detail = _detail_url(client)
    missing = post_form(client, detail, f"{detail}/decline", {"reason": ""})
    assert missing.status_code == 422
    assert "Enter the reason for declining." in missing.text
    declined = post_form(client, detail, f"{detail}/decline", {"reason": "No chat for minors."})
    assert "Declined" in flash_of(client, declined)
    page = client.get(status).text
    assert 'data-status="declined"' in page
    assert "No chat for minors." in page
    mail = outbox(initialised.outbox_dir)[-1]
    assert "declined" in mail["Subject"]
    # No further decision is offered.
    detail_page = client.get(detail).text
    assert 'id="approve-form"' not in detail_page
    assert 'id="decline-form"' not in detail_page


def test_deferring_keeps_the_application_open(
    client: TestClient, admin_account: AdminAccount, initialised: Settings
) -> None:
    _apply(client, initialised)
    admin_account.sign_in(client)
    detail = _detail_url(client)
    deferred = post_form(client, detail, f"{detail}/defer", {"reason": "board meets Friday"})
    assert "Deferred" in flash_of(client, deferred)
    page = client.get(detail).text
    assert 'data-status="deferred"' in page
    assert 'id="approve-form"' in page
    assert "Deferred (1)" in client.get("/admin/applications").text


def test_the_queue_shows_ages_and_filters(
    client: TestClient, admin_account: AdminAccount, initialised: Settings
) -> None:
    for name in ("First Org", "Second Org"):
        _apply(client, initialised, organization_name=name)
    admin_account.sign_in(client)
    page = client.get("/admin/applications").text
    assert page.index("First Org") < page.index("Second Org")
    assert "just now" in page
    assert 'aria-current="page" id="filter-submitted"' in page
    assert "First Org" not in client.get("/admin/applications?status=approved").text
    assert client.get("/admin/applications?status=bogus&page=-3").status_code == 200
