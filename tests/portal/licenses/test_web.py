"""The administrators' license pages: list, suspend, reinstate, revoke (publishing
the revocation list as the command line does), renew and new download links.
"""

from __future__ import annotations

import io
import zipfile
from typing import TYPE_CHECKING

from licensing.tokens import verify_license
from portal.licenses.models import LicenseStatus
from portal.repository.service import open_repository
from tests.portal.support import csrf_token, flash_of, link_in, outbox, post_form

if TYPE_CHECKING:
    from collections.abc import Callable

    from fastapi.testclient import TestClient
    from sqlalchemy.orm import Session

    from portal.licenses.models import License
    from portal.settings import Settings


def _detail(license_: License) -> str:
    return f"/admin/licenses/{license_.id}"


def test_the_list_shows_licenses_with_their_status(
    admin_client: TestClient, make_license: Callable[..., License]
) -> None:
    active = make_license("Alpha Chat")
    page = admin_client.get("/admin/licenses")
    assert page.status_code == 200
    assert "Alpha Chat" in page.text
    assert str(active.id) in page.text
    assert "Alpha Chat" not in admin_client.get("/admin/licenses?status=revoked").text


def test_suspend_needs_a_reason_then_reinstate(
    admin_client: TestClient, make_license: Callable[..., License], session: Session
) -> None:
    license_ = make_license()
    url = _detail(license_)
    missing = post_form(admin_client, url, f"{url}/suspend", {"reason": " "})
    assert missing.status_code == 422
    assert "Enter the reason for suspending." in missing.text
    suspended = post_form(admin_client, url, f"{url}/suspend", {"reason": "unpaid invoice"})
    assert "License suspended" in flash_of(admin_client, suspended)
    session.refresh(license_)
    assert license_.status is LicenseStatus.SUSPENDED
    reinstated = post_form(admin_client, url, f"{url}/reinstate", {})
    assert "License reinstated" in flash_of(admin_client, reinstated)
    session.refresh(license_)
    assert license_.status is LicenseStatus.ACTIVE
    history = admin_client.get(url).text
    assert "license:suspended" in history
    assert "license:reinstated" in history
    assert "admin@portal.example" in history


def test_revoke_publishes_the_revocation_list(
    admin_client: TestClient,
    make_license: Callable[..., License],
    initialised: Settings,
    session: Session,
) -> None:
    license_ = make_license()
    url = _detail(license_)
    before = open_repository(initialised, signing=False).revocations().version
    revoked = post_form(admin_client, url, f"{url}/revoke", {"reason": "abuse of the license"})
    assert "revocation list was published" in flash_of(admin_client, revoked)
    revocations = open_repository(initialised, signing=False).revocations()
    assert revocations.version == before + 1
    assert str(license_.id) in revocations.revoked_ids
    session.refresh(license_)
    assert license_.status is LicenseStatus.REVOKED
    # Final: revoking again is refused with the reason, and nothing else is offered.
    again = post_form(admin_client, url, f"{url}/revoke", {"reason": "twice"})
    assert "cannot become revoked" in flash_of(admin_client, again)
    assert 'id="revoke-form"' not in admin_client.get(url).text


def test_renew_extends_and_mails_a_new_token(
    admin_client: TestClient,
    make_license: Callable[..., License],
    initialised: Settings,
    session: Session,
) -> None:
    license_ = make_license()
    url = _detail(license_)
    old_expiry = license_.expires_at
    renewed = post_form(
        admin_client, url, f"{url}/renew", {"days": "30", "contact_email": "ops@chat.example"}
    )
    assert "renewed by 30 days" in flash_of(admin_client, renewed)
    session.refresh(license_)
    assert (license_.expires_at - old_expiry).days == 30
    [message] = outbox(initialised.outbox_dir)
    assert message["To"] == "ops@chat.example"
    link = link_in(message, "/licenses/download/")
    page = admin_client.get(link)
    package = admin_client.post(link, data={"csrf_token": csrf_token(page)})
    with zipfile.ZipFile(io.BytesIO(package.content)) as archive:
        token = archive.read("license.jwt").decode()
    keys = open_repository(initialised, signing=False).license_keys().keys
    assert verify_license(token, keys).claims.exp == license_.expires_at


def test_a_new_download_link_withdraws_the_old_one(
    admin_client: TestClient, make_license: Callable[..., License], initialised: Settings
) -> None:
    license_ = make_license()
    url = _detail(license_)
    for _ in range(2):
        post_form(admin_client, url, f"{url}/send-link", {"contact_email": "ops@chat.example"})
    first, second = (link_in(m, "/licenses/download/") for m in outbox(initialised.outbox_dir))
    assert admin_client.get(first).status_code == 410
    assert admin_client.get(second).status_code == 200


def test_a_suspended_license_is_not_handed_out(
    admin_client: TestClient, make_license: Callable[..., License], initialised: Settings
) -> None:
    license_ = make_license()
    url = _detail(license_)
    post_form(admin_client, url, f"{url}/send-link", {"contact_email": "ops@chat.example"})
    post_form(admin_client, url, f"{url}/suspend", {"reason": "investigating"})
    link = link_in(outbox(initialised.outbox_dir)[0], "/licenses/download/")
    response = admin_client.get(link)
    assert response.status_code == 409
    assert "suspended" in response.text


def test_unknown_or_malformed_license_ids_are_404(admin_client: TestClient) -> None:
    assert admin_client.get("/admin/licenses/not-a-uuid").status_code == 404
    assert (
        admin_client.get("/admin/licenses/00000000-0000-4000-8000-000000000000").status_code == 404
    )
    assert admin_client.get("/admin/applications/999999").status_code == 404
    assert admin_client.get("/admin/applications/abc").status_code == 404
