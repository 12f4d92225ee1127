"""The whole journey over plain HTTP: an organisation applies, an administrator
vets it, asks a question, approves, and the organisation downloads a license
that verifies against the portal's published keys, exactly as an engine checks it.
"""

from __future__ import annotations

import io
import zipfile
from typing import TYPE_CHECKING

from licensing.client import LocalFileFetcher, UpdateClient, local_base_urls
from licensing.tokens import verify_license
from portal.applications.models import ChecklistItem
from tests.portal.support import (
    APPLICATION,
    csrf_token,
    flash_of,
    link_in,
    outbox,
    post_form,
    text_body,
)

if TYPE_CHECKING:
    from pathlib import Path

    from fastapi.testclient import TestClient

    from portal.settings import Settings
    from tests.portal.support import AdminAccount


def _verify_like_an_engine(token: str, root: bytes, settings: Settings, tmp_path: Path) -> str:
    """Verify ``token`` with the keys and revocations that the downloaded root vouches for."""
    metadata_url, targets_url = local_base_urls(settings.repository_dir)
    client = UpdateClient(
        trusted_root=root,
        metadata_dir=tmp_path / "engine-metadata",
        metadata_base_url=metadata_url,
        target_base_url=targets_url,
        fetcher=LocalFileFetcher(settings.repository_dir),
    )
    client.refresh()
    verified = verify_license(
        token, client.license_keys().keys, revoked=client.revocations().revoked_ids
    )
    return verified.claims.org_name


def test_apply_vet_approve_and_download_once(
    client: TestClient, admin_account: AdminAccount, initialised: Settings, tmp_path: Path
) -> None:
    # The organisation applies and is mailed a status link.
    applied = post_form(client, "/apply", "/apply", APPLICATION)
    assert "received" in flash_of(client, applied)
    [received] = outbox(initialised.outbox_dir)
    assert received["To"] == "ada@chat.example"
    assert "A-" in received["Subject"]
    status_path = link_in(received, "/applications/status/")
    status = client.get(status_path)
    assert status.status_code == 200
    assert 'data-status="submitted"' in status.text

    # An administrator signs in with password and TOTP, finds it in the queue.
    admin_account.sign_in(client)
    queue = client.get("/admin/applications")
    assert "Example Chat Ltd" in queue.text
    detail_path = queue.text.split('href="/admin/applications/', 1)[1].split('"', 1)[0]
    detail_url = f"/admin/applications/{detail_path}"

    # Approval is refused while the checklist is incomplete.
    refused = post_form(client, detail_url, f"{detail_url}/approve", {"max_engines": "2"})
    assert "checklist is not complete" in flash_of(client, refused)

    # Ticks part of the checklist, asks a question.
    for item in list(ChecklistItem)[:2]:
        ticked = post_form(
            client,
            detail_url,
            f"{detail_url}/checklist",
            {"item": item.value, "checked": "yes", "note": f"checked {item.value}"},
        )
        assert "ticked" in flash_of(client, ticked)
    asked = post_form(
        client,
        detail_url,
        f"{detail_url}/request-information",
        {"question": "How many moderators work at night?"},
    )
    assert "Question sent" in flash_of(client, asked)
    question_mail = outbox(initialised.outbox_dir)[-1]
    assert "How many moderators work at night?" in text_body(question_mail)

    # The applicant answers through the link in that e-mail; back in the queue.
    reply_path = link_in(question_mail, "/applications/status/")
    page = client.get(reply_path)
    assert "How many moderators work at night?" in page.text
    replied = client.post(
        f"{reply_path}/reply", data={"reply": "Two, all night.", "csrf_token": csrf_token(page)}
    )
    assert "back in the review queue" in flash_of(client, replied)
    assert 'data-status="submitted"' in client.get(reply_path).text

    # The rest of the checklist, then approval.
    for item in list(ChecklistItem)[2:]:
        post_form(
            client, detail_url, f"{detail_url}/checklist", {"item": item.value, "checked": "yes"}
        )
    detail = client.get(detail_url)
    assert "Two, all night." in detail.text
    assert f"by {admin_account.email}" in detail.text
    approved = post_form(client, detail_url, f"{detail_url}/approve", {"max_engines": "2"})
    assert "Approved" in flash_of(client, approved)
    assert 'data-status="approved"' in client.get(detail_url).text

    # The contact downloads the license once.
    approval_mail = outbox(initialised.outbox_dir)[-1]
    assert "approved" in approval_mail["Subject"]
    download_path = link_in(approval_mail, "/licenses/download/")
    page = client.get(download_path)
    assert page.status_code == 200
    assert "vigil-engine init --root root.json --license license.jwt" in page.text
    download = client.post(download_path, data={"csrf_token": csrf_token(page)})
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/zip"
    assert "attachment" in download.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(download.content)) as package:
        assert sorted(package.namelist()) == ["SETUP.txt", "license.jwt", "root.json"]
        token = package.read("license.jwt").decode().strip()
        root = package.read("root.json")
    assert _verify_like_an_engine(token, root, initialised, tmp_path) == "Example Chat Ltd"

    # A second download is refused, and the page says the link is used up.
    again = client.post(download_path, data={"csrf_token": csrf_token(page)})
    assert again.status_code == 410
    assert client.get(download_path).status_code == 410

    # Every step is in the application's history and the audit trail.
    audit = client.get("/admin/audit?tag=application").text
    for tag in (
        "application:submitted",
        "application:checklist_updated",
        "application:information_requested",
        "application:replied",
        "application:approved",
    ):
        assert tag in audit
    assert "license:downloaded" in client.get("/admin/audit").text
