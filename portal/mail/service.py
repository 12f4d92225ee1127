"""Rendering and delivering the portal's e-mail.

- Every message is rendered from ``templates/email/<name>/``: ``subject.txt``,
  ``body.txt`` and ``body.html`` become one ``multipart/alternative`` message.
- Delivery is by SMTP when ``VIGIL_SMTP_HOST`` is set (STARTTLS unless
  ``VIGIL_SMTP_STARTTLS=false``, login when ``VIGIL_SMTP_USER`` is set), else
  one ``.eml`` file per message in ``$VIGIL_PORTAL_HOME/outbox/`` (SPEC §5).
- Services never send: they ``queue`` messages on the request's ``Postbox``,
  which the web request delivers only after its transaction committed, so no
  one is mailed a link to a row that was rolled back. A message whose delivery
  fails is logged and kept in ``outbox/undelivered/`` for the operator to
  resend, since the action it reports has already happened.
"""

from __future__ import annotations

import logging
import os
import smtplib
import ssl
import uuid
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import TYPE_CHECKING, Any, Protocol

from portal.db_base import utc_now
from portal.templating import template_environment

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from portal.settings import Settings

logger = logging.getLogger(__name__)


class MailTransport(Protocol):
    def send(self, message: EmailMessage) -> None: ...


def write_eml(directory: Path, message: EmailMessage) -> Path:
    """Write ``message`` to a new ``.eml`` file in ``directory`` (mode 0600)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    stamp = utc_now().strftime("%Y%m%dT%H%M%S%fZ")
    path = directory / f"{stamp}-{uuid.uuid4().hex[:12]}.eml"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(message.as_bytes())
    return path


@dataclass(frozen=True)
class OutboxTransport:
    """One ``.eml`` file per message, for development and air-gapped portals."""

    directory: Path

    def send(self, message: EmailMessage) -> None:
        write_eml(self.directory, message)


@dataclass(frozen=True)
class SmtpTransport:
    host: str
    port: int
    user: str = ""
    password: str = field(default="", repr=False)
    starttls: bool = True
    timeout: float = 10.0

    def send(self, message: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.user:
                smtp.login(self.user, self.password)
            smtp.send_message(message)


def transport_for(settings: Settings) -> MailTransport:
    if not settings.smtp_host:
        return OutboxTransport(settings.outbox_dir)
    return SmtpTransport(
        host=settings.smtp_host,
        port=settings.smtp_port,
        user=settings.smtp_user,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else "",
        starttls=settings.smtp_starttls,
        timeout=settings.smtp_timeout_seconds,
    )


def render_email(name: str, context: Mapping[str, Any], *, to: str, sender: str) -> EmailMessage:
    """The message ``templates/email/<name>/`` renders for ``context``."""
    environment = template_environment()
    subject = environment.get_template(f"email/{name}/subject.txt").render(context)
    text = environment.get_template(f"email/{name}/body.txt").render(context)
    html = environment.get_template(f"email/{name}/body.html").render(context)
    message = EmailMessage()
    message["Subject"] = " ".join(subject.split())
    message["From"] = sender
    message["To"] = to
    message["Date"] = format_datetime(utc_now())
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2].strip("> ") or None)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


@dataclass
class Postbox:
    """Messages queued by one unit of work, delivered after it commits."""

    transport: MailTransport
    sender: str
    undelivered_dir: Path
    queued: list[EmailMessage] = field(default_factory=list)

    @classmethod
    def for_settings(cls, settings: Settings) -> Postbox:
        return cls(
            transport=transport_for(settings),
            sender=settings.email_from,
            undelivered_dir=settings.outbox_dir / "undelivered",
        )

    def queue(self, name: str, *, to: str, context: Mapping[str, Any]) -> None:
        self.queued.append(render_email(name, context, to=to, sender=self.sender))

    def discard(self) -> None:
        self.queued.clear()

    def deliver(self) -> int:
        """Send every queued message; return how many failed (kept as ``.eml``)."""
        failed = 0
        messages, self.queued = self.queued, []
        for message in messages:
            try:
                self.transport.send(message)
            except (OSError, smtplib.SMTPException) as error:
                failed += 1
                kept = write_eml(self.undelivered_dir, message)
                logger.exception(
                    "e-mail %r to %s not delivered (%s); kept in %s",
                    message["Subject"],
                    message["To"],
                    type(error).__name__,
                    kept,
                )
        return failed
