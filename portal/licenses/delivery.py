"""Handing a license to its organisation: one-time download links and the package.

- ``send_download_link`` withdraws the license's earlier unused links, creates
  a one-time link (``VIGIL_DOWNLOAD_LINK_DAYS``) and e-mails it.
- The link's page (``GET``) only describes what is offered and changes nothing:
  mail scanners open links before people do, and must not use them up.
- ``download_package`` (the page's form, ``POST``) consumes the link and
  returns one zip holding ``license.jwt``, ``root.json`` and ``SETUP.txt``, so
  both files arrive in one response or the link is not used. The token is
  signed when downloaded (the same claims and key give the same token,
  ``portal.licenses.service``), so no token is ever stored; a license that is
  no longer active is not handed out.
"""

from __future__ import annotations

import io
import re
import uuid
import zipfile
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Final

from portal.errors import LicenseStateError
from portal.events.service import record_event
from portal.events.tags import EventTag
from portal.licenses.models import License, LicenseStatus
from portal.licenses.service import get_license, sign_license
from portal.magic_links.models import LinkPurpose
from portal.magic_links.service import consume_link, create_link, resolve_link, withdraw_links
from portal.repository.service import license_signing_key, open_repository
from portal.templating import template_environment

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from portal.mail.service import Postbox
    from portal.settings import Settings

LICENSE_FILE: Final = "license.jwt"
ROOT_FILE: Final = "root.json"
SETUP_FILE: Final = "SETUP.txt"
_ZIP_TIME: Final = (2026, 1, 1, 0, 0, 0)


def send_download_link(
    session: Session,
    settings: Settings,
    postbox: Postbox,
    license_: License,
    *,
    to: str,
    actor: str,
    template: str | None = "license-download",
) -> str:
    """A new one-time download link for ``license_``, e-mailed to ``to`` with
    ``template`` (None: the caller puts the returned link in its own e-mail).

    Raises:
        LicenseStateError: The license is not active.
    """
    if license_.status is not LicenseStatus.ACTIVE:
        raise LicenseStateError(
            f"license {license_.id} is {license_.status.value}; only active licenses are sent"
        )
    withdraw_links(session, LinkPurpose.LICENSE_DOWNLOAD, str(license_.id))
    token = create_link(
        session,
        LinkPurpose.LICENSE_DOWNLOAD,
        str(license_.id),
        lifetime=timedelta(days=settings.download_link_days),
        one_time=True,
    )
    link = f"{settings.portal_url}/licenses/download/{token}"
    if template is not None:
        postbox.queue(
            template,
            to=to,
            context={
                "license": license_,
                "download_link": link,
                "download_days": settings.download_link_days,
            },
        )
    record_event(
        session,
        EventTag.LICENSE_DOWNLOAD_LINK_SENT,
        actor=actor,
        subject_id=str(license_.id),
        payload={"to": to, "expires_in_days": settings.download_link_days},
    )
    return link


def license_for_download(session: Session, token: str) -> License:
    """The license a download link offers, without using the link up.

    Raises:
        LinkUnusableError: The link is unknown, expired or used.
        LicenseStateError: The license is no longer active.
    """
    link = resolve_link(session, token, LinkPurpose.LICENSE_DOWNLOAD)
    license_ = get_license(session, uuid.UUID(link.subject_id))
    _require_active(license_)
    return license_


def _require_active(license_: License) -> None:
    if license_.status is not LicenseStatus.ACTIVE:
        raise LicenseStateError(
            f"this license is {license_.status.value}; contact the portal's administrators"
        )


@dataclass(frozen=True)
class DownloadPackage:
    filename: str
    content: bytes
    license: License


def setup_instructions(settings: Settings, license_: License) -> str:
    return (
        template_environment()
        .get_template("licenses/SETUP.txt")
        .render(license=license_, portal_url=settings.portal_url)
    )


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.external_attr = 0o600 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, content)
    return buffer.getvalue()


def download_package(session: Session, settings: Settings, token: str) -> DownloadPackage:
    """Use the one-time link up and return the license package.

    Raises:
        LinkUnusableError: The link is unknown, expired or already used.
        LicenseStateError: The license is no longer active.
    """
    link = consume_link(session, token, LinkPurpose.LICENSE_DOWNLOAD)
    license_ = get_license(session, uuid.UUID(link.subject_id))
    _require_active(license_)
    signing_key = license_signing_key(settings)
    license_token = sign_license(license_, signing_key=signing_key.key, issuer=settings.portal_url)
    root = open_repository(settings, signing=False).root_bytes()
    session.flush()
    record_event(
        session,
        EventTag.LICENSE_DOWNLOADED,
        actor="download-link",
        subject_id=str(license_.id),
        payload={"key_id": license_.key_id},
    )
    slug = re.sub(r"[^a-z0-9]+", "-", license_.organisation.name.lower()).strip("-") or "license"
    content = _zip(
        {
            LICENSE_FILE: (license_token + "\n").encode("ascii"),
            ROOT_FILE: root,
            SETUP_FILE: setup_instructions(settings, license_).encode("utf-8"),
        }
    )
    return DownloadPackage(filename=f"vigil-{slug[:40]}.zip", content=content, license=license_)
