"""The license lifecycle: one service function per action, each audited.

- ``issue_license``: a new ``active`` license and its signed token.
- ``suspend_license`` / ``reinstate_license``: ``active`` <-> ``suspended``.
- ``revoke_license``: to ``revoked`` (final), and the signed revocation list
  in the update repository is published before the caller commits, so a
  failure can leave a license revoked for engines but never the reverse.
- ``renew_license``: a later ``exp`` for an ``active`` license and a new token
  with the same id (the old token stays valid until its own ``exp``).

Tokens are not stored: they are bearer credentials, and the same claims signed
with the same Ed25519 key give the same token again (``sign_license``).
Times are whole seconds, as the token's NumericDates are.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

from sqlalchemy import select

from licensing.keys import key_id
from licensing.tokens import LicenseClaims
from licensing.tokens import issue_license as sign_token
from portal.bundles.models import Channel
from portal.db_base import utc_now
from portal.errors import InvalidInputError, LicenseNotFoundError, LicenseStateError
from portal.events.service import record_event
from portal.events.tags import EventTag
from portal.licenses.models import License, LicenseStatus
from portal.organisations.service import withdraw_dashboard_links
from portal.pagination import Page, paginate

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from sqlalchemy.orm import Session

    from licensing.repository import Repository
    from portal.organisations.models import Organisation

MAX_DAYS: Final = 3660
MAX_ENGINES: Final = 10_000
_FEATURE: Final = re.compile(r"[a-z][a-z0-9_]{0,63}")


@dataclass(frozen=True)
class IssuedLicense:
    license: License
    token: str


def _now() -> datetime:
    return utc_now().replace(microsecond=0)


def _check_days(days: int) -> None:
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInputError(f"a license lasts between 1 and {MAX_DAYS} days")


def _clean_channels(channels: Iterable[str]) -> list[str]:
    cleaned = sorted(set(channels))
    if not cleaned:
        raise InvalidInputError("a license must grant at least one channel")
    known = {channel.value for channel in Channel}
    unknown = [channel for channel in cleaned if channel not in known]
    if unknown:
        raise InvalidInputError(
            f"unknown channel {unknown[0]!r}; channels are {', '.join(sorted(known))}"
        )
    return cleaned


def _clean_features(features: Iterable[str]) -> list[str]:
    cleaned = sorted(set(features))
    for feature in cleaned:
        if not _FEATURE.fullmatch(feature):
            raise InvalidInputError(f"feature {feature!r} must match {_FEATURE.pattern}")
    return cleaned


def license_claims(license_: License, *, issuer: str) -> LicenseClaims:
    """The token claims of ``license_`` (SPEC §7)."""
    return LicenseClaims(
        iss=issuer,
        sub=str(license_.organisation_id),
        jti=str(license_.id),
        iat=license_.issued_at,
        nbf=license_.not_before,
        exp=license_.expires_at,
        org_name=license_.organisation.name,
        channels=tuple(license_.channels),
        max_engines=license_.max_engines,
        features=tuple(license_.features),
    )


def sign_license(license_: License, *, signing_key: Ed25519PrivateKey, issuer: str) -> str:
    """The compact JWS of ``license_``, signed with ``signing_key``."""
    token = sign_token(license_claims(license_, issuer=issuer), signing_key)
    license_.key_id = key_id(signing_key)
    return token


def parse_license_id(value: str) -> uuid.UUID:
    """Raises InvalidInputError unless ``value`` is a license id (a UUID)."""
    try:
        return uuid.UUID(value.strip())
    except ValueError:
        raise InvalidInputError(f"{value!r} is not a license id") from None


def get_license(session: Session, license_id: uuid.UUID) -> License:
    """Raises LicenseNotFoundError if there is no such license."""
    found = session.get(License, license_id)
    if found is None:
        raise LicenseNotFoundError(f"no license {license_id}")
    return found


def list_licenses(session: Session) -> Sequence[License]:
    return session.scalars(select(License).order_by(License.issued_at.desc())).all()


def issue_license(
    session: Session,
    organisation: Organisation,
    *,
    days: int,
    channels: Iterable[str],
    max_engines: int,
    features: Iterable[str] = (),
    signing_key: Ed25519PrivateKey,
    issuer: str,
    actor: str,
) -> IssuedLicense:
    """A new active license for ``organisation``, valid from now for ``days``.

    Raises:
        InvalidInputError: Days, channels, engines or features are out of range.
    """
    _check_days(days)
    if not 1 <= max_engines <= MAX_ENGINES:
        raise InvalidInputError(f"max engines must be between 1 and {MAX_ENGINES}")
    now = _now()
    license_ = License(
        organisation=organisation,
        channels=_clean_channels(channels),
        max_engines=max_engines,
        features=_clean_features(features),
        issued_at=now,
        not_before=now,
        expires_at=now + timedelta(days=days),
        status=LicenseStatus.ACTIVE,
        status_changed_at=now,
        key_id=key_id(signing_key),
    )
    session.add(license_)
    session.flush()
    token = sign_license(license_, signing_key=signing_key, issuer=issuer)
    record_event(
        session,
        EventTag.LICENSE_ISSUED,
        actor=actor,
        subject_id=str(license_.id),
        payload={
            "organisation": organisation.name,
            "organisation_id": str(organisation.id),
            "channels": license_.channels,
            "max_engines": license_.max_engines,
            "features": license_.features,
            "expires_at": license_.expires_at.isoformat(),
            "key_id": license_.key_id,
        },
    )
    return IssuedLicense(license=license_, token=token)


def _require_reason(reason: str) -> str:
    cleaned = " ".join(reason.split())
    if not cleaned:
        raise InvalidInputError("a reason is required")
    return cleaned


def suspend_license(session: Session, license_id: uuid.UUID, *, reason: str, actor: str) -> License:
    """Suspend an active license (the portal stops serving it; reversible)."""
    license_ = get_license(session, license_id)
    reason = _require_reason(reason)
    license_.transition(LicenseStatus.SUSPENDED, at=_now())
    session.flush()
    record_event(
        session,
        EventTag.LICENSE_SUSPENDED,
        actor=actor,
        subject_id=str(license_.id),
        payload={"reason": reason},
    )
    return license_


def reinstate_license(session: Session, license_id: uuid.UUID, *, actor: str) -> License:
    """Make a suspended license active again."""
    license_ = get_license(session, license_id)
    license_.transition(LicenseStatus.ACTIVE, at=_now())
    session.flush()
    record_event(session, EventTag.LICENSE_REINSTATED, actor=actor, subject_id=str(license_.id))
    return license_


def revoke_license(
    session: Session,
    license_id: uuid.UUID,
    *,
    reason: str,
    repository: Repository,
    actor: str,
) -> License:
    """Revoke for good and publish the revocation list engines check. When the
    organisation has no other license left that is active or suspended, its dashboard
    links stop working too (``withdraw_dashboard_links``).

    Raises:
        LicenseNotFoundError, LicenseStateError: No such license, or already revoked.
        RepositoryError, SigningKeyError: The revocation list could not be published.
    """
    license_ = get_license(session, license_id)
    reason = _require_reason(reason)
    now = _now()
    license_.transition(LicenseStatus.REVOKED, at=now)
    license_.revoked_at = now
    license_.revocation_reason = reason
    session.flush()
    revocations = repository.revoke_license(str(license_.id), reason, revoked_at=now)
    versions = repository.publish()
    record_event(
        session,
        EventTag.LICENSE_REVOKED,
        actor=actor,
        subject_id=str(license_.id),
        payload={
            "reason": reason,
            "revocation_list_version": revocations.version,
            "targets_version": versions.targets,
        },
    )
    others_in_force = session.scalar(
        select(License.id)
        .where(
            License.organisation_id == license_.organisation_id,
            License.id != license_.id,
            License.status.in_([LicenseStatus.ACTIVE, LicenseStatus.SUSPENDED]),
        )
        .limit(1)
    )
    if others_in_force is None:
        withdraw_dashboard_links(
            session,
            license_.organisation_id,
            reason=f"license {license_.id} revoked, the last one in force",
            actor=actor,
        )
    return license_


def renew_license(
    session: Session,
    license_id: uuid.UUID,
    *,
    days: int,
    signing_key: Ed25519PrivateKey,
    issuer: str,
    actor: str,
) -> IssuedLicense:
    """Extend an active license by ``days`` (from its expiry, or from now if
    it already expired) and sign a new token with the same id.

    Raises:
        LicenseNotFoundError, LicenseStateError: No such license, or not active.
    """
    _check_days(days)
    license_ = get_license(session, license_id)
    if license_.status is not LicenseStatus.ACTIVE:
        raise LicenseStateError(
            f"license {license_.id} is {license_.status.value}; only active licenses are renewed"
        )
    previous = license_.expires_at
    license_.expires_at = max(previous, _now()) + timedelta(days=days)
    token = sign_license(license_, signing_key=signing_key, issuer=issuer)
    session.flush()
    record_event(
        session,
        EventTag.LICENSE_RENEWED,
        actor=actor,
        subject_id=str(license_.id),
        payload={
            "previous_expires_at": previous.isoformat(),
            "expires_at": license_.expires_at.isoformat(),
            "key_id": license_.key_id,
        },
    )
    return IssuedLicense(license=license_, token=token)


def page_licenses(
    session: Session, *, number: int, per_page: int, status: LicenseStatus | None = None
) -> Page[License]:
    """One page of licenses, newest first, optionally of one status."""
    query = select(License).order_by(License.issued_at.desc(), License.id)
    if status is not None:
        query = query.where(License.status == status)
    return paginate(session, query, number=number, per_page=per_page)
