"""Every page: one h1, headings in order, a label for every field, no script,
stable ids for the browser tests that come later.
"""

from __future__ import annotations

from html.parser import HTMLParser
from typing import TYPE_CHECKING

import pytest

from portal.applications.models import ChecklistItem
from tests.portal.support import APPLICATION, link_in, outbox, post_form

if TYPE_CHECKING:
    from collections.abc import Callable

    from fastapi.testclient import TestClient

    from portal.licenses.models import License
    from portal.settings import Settings
    from tests.portal.support import AdminAccount


class PageAudit(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.headings: list[int] = []
        self.field_ids: list[str] = []
        self.unlabelled: list[str] = []
        self.label_targets: set[str] = set()
        self.ids: list[str] = []
        self.scripts = 0
        self.lang = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if attributes.get("id"):
            self.ids.append(str(attributes["id"]))
        if tag == "html":
            self.lang = attributes.get("lang") or ""
        if tag == "script":
            self.scripts += 1
        if len(tag) == 2 and tag[0] == "h" and tag[1].isdigit():
            self.headings.append(int(tag[1]))
        if tag == "label" and attributes.get("for"):
            self.label_targets.add(str(attributes["for"]))
        if tag in {"input", "select", "textarea"} and attributes.get("type") not in {
            "hidden",
            "submit",
        }:
            field_id = attributes.get("id")
            if field_id:
                self.field_ids.append(field_id)
            else:
                self.unlabelled.append(str(attributes.get("name")))

    def check(self, path: str) -> None:
        assert self.lang == "en", path
        assert self.scripts == 0, path
        assert self.headings.count(1) == 1, (path, self.headings)
        assert self.headings[0] == 1, (path, self.headings)
        for previous, current in zip(self.headings, self.headings[1:], strict=False):
            assert current <= previous + 1, (path, self.headings)
        assert not self.unlabelled, (path, self.unlabelled)
        missing = [field for field in self.field_ids if field not in self.label_targets]
        assert not missing, (path, missing)
        duplicates = {item for item in self.ids if self.ids.count(item) > 1}
        assert not duplicates, (path, duplicates)


def _audit(client: TestClient, path: str, *, status: int = 200) -> None:
    response = client.get(path)
    assert response.status_code == status, path
    page = PageAudit()
    page.feed(response.text)
    page.check(path)


@pytest.fixture
def pages(
    client: TestClient,
    admin_account: AdminAccount,
    initialised: Settings,
    make_license: Callable[..., License],
) -> list[str]:
    """Every kind of page, with data on it: an application mid-vetting, a license."""
    post_form(client, "/apply", "/apply", APPLICATION)
    status_link = link_in(outbox(initialised.outbox_dir)[-1], "/applications/status/")
    admin_account.sign_in(client)
    queue = client.get("/admin/applications").text
    detail = "/admin/applications/" + queue.split('href="/admin/applications/', 1)[1].split('"')[0]
    post_form(
        client,
        detail,
        f"{detail}/checklist",
        {"item": ChecklistItem.TERMS_ACCEPTED.value, "checked": "yes"},
    )
    post_form(client, detail, f"{detail}/notes", {"note": "A note."})
    post_form(client, detail, f"{detail}/request-information", {"question": "Why?"})
    license_ = make_license()
    license_url = f"/admin/licenses/{license_.id}"
    post_form(client, license_url, f"{license_url}/send-link", {"contact_email": "o@x.example"})
    post_form(client, "/admin/admins", "/admin/admins/invite", {"email": "new@x.example"})
    mails = outbox(initialised.outbox_dir)
    download = link_in(mails[-2], "/licenses/download/")
    invitation = link_in(mails[-1], "/invitations/")
    return [
        "/",
        "/apply",
        "/apply/submitted",
        status_link,
        "/admin/applications",
        "/admin/applications?status=all",
        detail,
        "/admin/licenses",
        license_url,
        "/admin/audit",
        "/admin/admins",
        download,
        invitation,
    ]


def test_pages_are_accessible(client: TestClient, pages: list[str]) -> None:
    for path in pages:
        _audit(client, path)
    _audit(client, "/no-such-page", status=404)


def test_form_errors_are_accessible(client: TestClient) -> None:
    response = post_form(client, "/apply", "/apply", {"organization_name": "Only this"})
    page = PageAudit()
    page.feed(response.text)
    page.check("/apply (errors)")
    assert 'role="alert"' in response.text


def test_signed_out_pages_are_accessible(client: TestClient) -> None:
    _audit(client, "/admin/login")
