"""Helpers shared by the portal tests."""

from __future__ import annotations

import asyncio
import contextlib
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pyotp

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Iterator
    from email.message import EmailMessage
    from pathlib import Path

    import httpx
    from fastapi.testclient import TestClient
    from sqlalchemy.orm import Session
    from typer.testing import CliRunner, Result

    from portal.licenses.models import License

PASSPHRASE = "correct horse battery staple"  # noqa: S105 (test keys only)
ACTOR = "test:operator"
SESSION_SECRET = "test-session-secret-that-is-long-enough"  # noqa: S105
ADMIN_EMAIL = "admin@portal.example"
ADMIN_PASSWORD = "a long admin password"  # noqa: S105
# A complete application, with the SPEC §5 field names.
APPLICATION = {
    "organization_name": "Example Chat Ltd",
    "website": "https://chat.example",
    "country": "Ireland",
    "contact_name": "Ada Applicant",
    "contact_email": "ada@chat.example",
    "platform_description": "Group chat for school clubs.\nModerated by volunteers.",
    "offers_chat": "yes",
    "user_age_range": "13_17",
    "monthly_active_users": "25,000",
    "moderation_team_size": "6",
    "escalation_contact": "Sam Safety, head of trust and safety, +353 1 555 0100",
    "ncmec_esp_id": "",
    "agree_terms": "yes",
}
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')

MODEL_MANIFEST: dict[str, Any] = {
    "name": "vigil",
    "version": None,
    "created": "2026-11-20T10:00:00+00:00",
    "engine_version": ">=0.1.0,<1.0",
    "training_data_digest": "sha256:" + "ab" * 32,
    "recommended_threshold": 0.8,
    "characteristics": ["secrecy", "isolation"],
    "metrics": {"pr_auc": 0.91},
    "prevalence": 0.05,
}


@contextlib.contextmanager
def savepoint(session: Session) -> Iterator[None]:
    """Run a block that is expected to fail in a SAVEPOINT, so the test's
    transaction stays usable afterwards (PostgreSQL aborts it on an error).
    """
    nested = session.begin_nested()
    try:
        yield
    finally:
        if nested.is_active:
            nested.rollback()


@dataclass(frozen=True)
class Licensed:
    """A license and its token, as the organisation received it."""

    license: License
    token: str

    @property
    def headers(self) -> dict[str, str]:
        """The headers of an engine request authenticated with this license."""
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class PortalCli:
    """``vigil-portal`` run in-process by typer's ``CliRunner``."""

    runner: CliRunner

    def __call__(self, *args: str) -> Result:
        return self.with_input(None, *args)

    def with_input(self, stdin: str | None, *args: str) -> Result:
        """Run with ``stdin`` as standard input (for ``--password-stdin``)."""
        # Imported here: the root app loads the training stack, which only CLI tests need.
        from portal.cli import app  # noqa: PLC0415

        return self.runner.invoke(app, list(args), input=stdin)


#### Web ####


def csrf_token(page: httpx.Response) -> str:
    """The CSRF token of the first form on ``page``."""
    match = _CSRF.search(page.text)
    assert match, f"no CSRF token on the page ({page.status_code})"
    return match.group(1)


def post_form(
    client: TestClient, page_url: str, action: str, data: dict[str, str]
) -> httpx.Response:
    """Open ``page_url`` and submit ``data`` to ``action`` with the page's CSRF token,
    as a browser submits one of the page's forms.
    """
    page = client.get(page_url)
    assert page.status_code == 200, (page_url, page.status_code)
    return client.post(action, data={**data, "csrf_token": csrf_token(page)})


def flash_of(client: TestClient, response: httpx.Response) -> str:
    """The text of the page a redirect leads to (its flash message included)."""
    assert response.status_code == 303, (response.status_code, response.text[:500])
    return client.get(response.headers["location"]).text


@dataclass
class AdminAccount:
    email: str
    password: str
    secret: str
    steps_used: list[int] = field(default_factory=list)

    @classmethod
    def from_uri(cls, email: str, password: str, uri: str) -> AdminAccount:
        secret = parse_qs(urlsplit(uri).query)["secret"][0]
        return cls(email=email, password=password, secret=secret)

    def next_code(self) -> str:
        """A TOTP code the portal has not accepted yet (one step later each time)."""
        totp = pyotp.TOTP(self.secret)
        step = totp.timecode(datetime.now(UTC)) + len(self.steps_used)
        self.steps_used.append(step)
        return totp.generate_otp(step)

    def sign_in(self, client: TestClient, *, code: str | None = None) -> httpx.Response:
        response = post_form(
            client,
            "/admin/login",
            "/admin/login",
            {"email": self.email, "password": self.password, "totp_code": code or self.next_code()},
        )
        assert response.status_code == 303, response.text
        return response


def outbox(directory: Path) -> list[EmailMessage]:
    """The messages in an outbox folder, oldest first."""
    if not directory.is_dir():
        return []
    messages = []
    for path in sorted(directory.glob("*.eml")):
        parsed = message_from_bytes(path.read_bytes(), policy=policy.default)
        messages.append(parsed)  # type: ignore[arg-type]
    return messages


def text_body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def link_in(message: EmailMessage, path_prefix: str) -> str:
    """The path (from ``path_prefix`` on) of the first link in the message's text."""
    match = re.search(re.escape(path_prefix) + r"[A-Za-z0-9._~-]+", text_body(message))
    assert match, f"no {path_prefix} link in {message['Subject']!r}"
    return match.group(0)


def run_async(make_coroutine: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run a coroutine on a fresh event loop in its own thread (the test's
    thread may already run a loop, e.g. the browser tests' Playwright).
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make_coroutine())).result()
