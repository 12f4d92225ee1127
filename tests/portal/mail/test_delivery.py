"""E-mail: rendered from templates into text and HTML parts, delivered over SMTP
to a real local server when configured, else into the outbox folder.
"""

from __future__ import annotations

import socket
from email import message_from_bytes, policy
from typing import TYPE_CHECKING, Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from pydantic import SecretStr

from portal.mail.service import OutboxTransport, Postbox, SmtpTransport, render_email, transport_for
from tests.portal.support import APPLICATION, outbox, post_form

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from fastapi.testclient import TestClient

    from portal.settings import Settings


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's hook name)
        self.messages.append(
            (
                envelope.mail_from,
                envelope.rcpt_tos,
                message_from_bytes(envelope.content, policy=policy.default),
            )
        )
        return "250 OK"


def _authenticator(
    _server: Any, _session: Any, _envelope: Any, mechanism: str, data: Any
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        b"portal",
        b"s3cret-pass",
    )
    return AuthResult(success=ok and mechanism in {"LOGIN", "PLAIN"})


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = _free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=_authenticator,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def test_messages_have_subject_text_and_html_parts() -> None:
    message = render_email(
        "admin-invitation",
        {"inviter": "a@b.example", "link": "https://portal.example/invitations/x.y", "hours": 72},
        to="new@b.example",
        sender="Vigil portal <portal@portal.example>",
    )
    assert message["Subject"] == "Vigil portal: you are invited as an administrator"
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None
    assert html is not None
    assert "https://portal.example/invitations/x.y" in text.get_content()
    assert 'href="https://portal.example/invitations/x.y"' in html.get_content()
    assert message["Message-ID"].endswith("@portal.example>")


def test_html_parts_escape_what_applicants_typed() -> None:
    from types import SimpleNamespace  # noqa: PLC0415

    application = SimpleNamespace(
        contact_name="<img src=x>", organization_name="Org", label="A-000001"
    )
    message = render_email(
        "application-received",
        {"application": application, "status_link": "https://p/s", "link_days": 30},
        to="a@b.example",
        sender="portal@p.example",
    )
    html = message.get_body(preferencelist=("html",))
    assert html is not None
    assert "&lt;img src=x&gt;" in html.get_content()
    assert "<img src=x>" not in html.get_content()


def test_without_smtp_settings_mail_goes_to_the_outbox(initialised: Settings) -> None:
    transport = transport_for(initialised)
    assert transport == OutboxTransport(initialised.outbox_dir)


def test_smtp_delivery_to_a_real_server_with_login(
    smtp_server: tuple[Inbox, int], initialised: Settings
) -> None:
    inbox, port = smtp_server
    settings = initialised.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "smtp_starttls": False,
            "smtp_user": "portal",
            "smtp_password": SecretStr("s3cret-pass"),
            "email_from": "Vigil portal <portal@portal.example>",
        }
    )
    transport = transport_for(settings)
    assert isinstance(transport, SmtpTransport)
    assert "s3cret-pass" not in repr(transport)
    postbox = Postbox.for_settings(settings)
    postbox.queue(
        "admin-invitation",
        to="new@b.example",
        context={"inviter": "a@b.example", "link": "https://p/invitations/x.y", "hours": 72},
    )
    assert postbox.deliver() == 0
    [(sender, recipients, message)] = inbox.messages
    assert sender == "portal@portal.example"
    assert recipients == ["new@b.example"]
    assert message["Subject"] == "Vigil portal: you are invited as an administrator"


def test_the_web_app_sends_over_smtp_after_the_commit(
    smtp_server: tuple[Inbox, int],
    make_client: Callable[..., TestClient],
    initialised: Settings,
) -> None:
    inbox, port = smtp_server
    client = make_client(smtp_host="127.0.0.1", smtp_port=port, smtp_starttls=False, smtp_user="")
    response = post_form(client, "/apply", "/apply", APPLICATION)
    assert response.status_code == 303
    [(_sender, recipients, message)] = inbox.messages
    assert recipients == ["ada@chat.example"]
    assert "/applications/status/" in message.get_body(preferencelist=("plain",)).get_content()
    assert outbox(initialised.outbox_dir) == []


def test_undeliverable_mail_is_kept_for_the_operator(
    make_client: Callable[..., TestClient], initialised: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(smtp_host="127.0.0.1", smtp_port=_free_port(), smtp_starttls=False)
    response = post_form(client, "/apply", "/apply", APPLICATION)
    # The application is stored: the applicant is not asked to apply twice.
    assert response.status_code == 303
    [kept] = outbox(initialised.outbox_dir / "undelivered")
    assert kept["To"] == "ada@chat.example"
    assert "not delivered" in caplog.text


def test_no_mail_leaves_when_the_request_fails(tmp_path: Path) -> None:
    postbox = Postbox(OutboxTransport(tmp_path / "out"), "p@x.example", tmp_path / "undelivered")
    postbox.queue(
        "admin-invitation",
        to="a@b.example",
        context={"inviter": "i@x.example", "link": "https://p/i/x.y", "hours": 1},
    )
    postbox.discard()
    assert postbox.deliver() == 0
    assert not (tmp_path / "out").exists()
