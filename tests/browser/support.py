"""What the browser tests do on the portal, the way a person does it (fields
found by their labels, buttons by their names), and what they read behind its
back: the outbox, and administrators created as ``vigil-portal admin create`` does.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyotp
import pytest

from portal.admin.service import create_admin
from tests.portal.support import ADMIN_PASSWORD, AdminAccount, link_in, outbox

if TYPE_CHECKING:
    from collections.abc import Iterator
    from email.message import EmailMessage
    from pathlib import Path

    from playwright.sync_api import Locator, Page
    from sqlalchemy.orm import Session, sessionmaker

    from portal.settings import Settings

ACTOR = "test:browser"
# The application form's labels, by SPEC §5 field name.
TEXT_FIELD_LABELS = {
    "organization_name": "Organisation name",
    "website": "Website",
    "country": "Country of registration",
    "contact_name": "Full name",
    "contact_email": "E-mail address",
    "platform_description": "What does the platform do?",
    "monthly_active_users": "Monthly active users",
    "moderation_team_size": "People in the moderation team",
    "escalation_contact": "Who handles urgent child-safety escalations?",
    "ncmec_esp_id": "NCMEC Electronic Service Provider id",
}
OFFERS_CHAT_LEGEND = "Does the platform offer chat between users?"
AGE_RANGE_LABEL = "Ages of the platform's users"
TERMS_LABEL = "I agree to the terms of use"
LOGIN_FAILED = "The e-mail address, password or code is not right, or sign-in is paused."


def an_application(name: str) -> dict[str, str]:
    """Every SPEC §5 field, as an applicant types or picks it; ``name`` keeps the
    organisation and its contact apart from other tests' on the shared portal.
    """
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return {
        "organization_name": f"{name} Chat Ltd",
        "website": f"https://{slug}.chat.example",
        "country": "Ireland",
        "contact_name": "Ada Applicant",
        "contact_email": f"ada@{slug}.chat.example",
        "platform_description": "Group chat for school clubs.\nModerated by volunteers.",
        "offers_chat": "Yes",
        "user_age_range": "Mostly teenagers (13 to 17)",
        "monthly_active_users": "25,000",
        "moderation_team_size": "6",
        "escalation_contact": "Sam Safety, head of trust and safety, +353 1 555 0100",
        "ncmec_esp_id": "ESP-12345",
        "agree_terms": "yes",
    }


def fill_application(page: Page, values: dict[str, str]) -> None:
    """Fill the fields of the application form that ``values`` has."""
    for name, value in values.items():
        if name in TEXT_FIELD_LABELS:
            page.get_by_label(TEXT_FIELD_LABELS[name]).fill(value)
        elif name == "offers_chat":
            group = page.get_by_role("group", name=OFFERS_CHAT_LEGEND)
            group.get_by_label(value, exact=True).check()
        elif name == "user_age_range":
            page.get_by_label(AGE_RANGE_LABEL).select_option(label=value)
        elif name == "agree_terms" and value:
            page.get_by_label(TERMS_LABEL).check()


def sign_in(page: Page, admin: AdminAccount, *, code: str | None = None) -> None:
    """Fill and send the sign-in form on ``page`` (the code: the authenticator's current one)."""
    page.get_by_label("E-mail address").fill(admin.email)
    page.get_by_label("Password", exact=True).fill(admin.password)
    page.get_by_label("Code from your authenticator app").fill(code or admin.next_code())
    page.get_by_role("button", name="Sign in").click()


def a_wrong_code(admin: AdminAccount) -> str:
    """Six digits that are none of the codes the portal would accept now."""
    totp = pyotp.TOTP(admin.secret)
    current = totp.timecode(datetime.now(UTC))
    near = {totp.generate_otp(step) for step in range(current - 2, current + 3)}
    return next(code for code in (str(digit) * 6 for digit in range(10)) if code not in near)


def heading(page: Page) -> Locator:
    """The page's main heading."""
    return page.get_by_role("heading", level=1)


def main_menu(page: Page) -> Locator:
    """The site's navigation, in the header of every page."""
    return page.get_by_role("navigation", name="Main")


def flash(page: Page) -> Locator:
    """The confirmation a page shows after a form was sent."""
    return page.get_by_role("status")


def jws_part(token: str, index: int) -> dict[str, Any]:
    """The JSON of part ``index`` (0: header, 1: payload) of a compact JWS."""
    parts = token.split(".")
    assert len(parts) == 3, f"not a compact JWS: {len(parts)} parts"
    segment = parts[index]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    )
    return decoded


#### The live portal and its artifacts ####


@dataclass
class LivePortal:
    """The portal served on ``url``, and what a test may do behind its back."""

    url: str
    settings: Settings
    session_factory: sessionmaker[Session]
    _admins: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def create_admin(self) -> AdminAccount:
        """A new enrolled administrator, as ``vigil-portal admin create`` makes one.

        Each test signs in with its own: a TOTP code is accepted only once per
        administrator, and failed sign-ins count towards a lockout.
        """
        email = f"admin-{next(self._admins)}@portal.example"
        with self.session_factory.begin() as session:
            admin, uri = create_admin(session, email, ADMIN_PASSWORD, actor=ACTOR)
            address = admin.email
        return AdminAccount.from_uri(address, ADMIN_PASSWORD, uri)

    def outbox(self) -> list[EmailMessage]:
        """Every e-mail the portal sent so far, oldest first."""
        return outbox(self.settings.outbox_dir)

    def mail_to(self, address: str, subject: str) -> EmailMessage:
        """The newest e-mail to ``address`` whose subject contains ``subject``."""
        sent = self.outbox()
        for message in reversed(sent):
            if message["To"] == address and subject in str(message["Subject"]):
                found: EmailMessage = message
                return found
        summary = [(message["To"], message["Subject"]) for message in sent]
        pytest.fail(f"no e-mail to {address} about {subject!r}; the outbox holds {summary}")

    def link_in(self, message: EmailMessage, path: str) -> str:
        """The full link to ``path`` in ``message``, on the portal's public URL."""
        return link_in(message, self.url + path)


@dataclass
class Screenshots:
    """Numbered pictures of a test's steps in ``artifacts/screenshots/<test>/``."""

    directory: Path
    _steps: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def take(self, page: Page, step: str) -> None:
        name = re.sub(r"[^a-z0-9]+", "-", step.lower()).strip("-")
        self.directory.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=self.directory / f"{next(self._steps):02d}-{name}.png", full_page=True)
