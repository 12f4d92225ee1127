"""Engine activations and leases: one service function per action, each audited.

- ``activate_engine``: an engine takes a seat of its license and receives a
  lease. Activating an engine that already holds a seat is idempotent: the
  same activation, a fresh lease (``created`` is false). The license row is
  locked (``SELECT ... FOR UPDATE`` on PostgreSQL) while seats are counted, so
  two engines activating at once cannot both take the last seat.
- A license's seats are ``max_engines``. When they are all taken, a seat whose
  lease lapsed (the engine has not renewed for a whole lease period) is
  reclaimed for the newcomer: deactivated by ``portal:lease-lapsed`` and
  audited like an administrator's deactivation. Otherwise the activation is
  refused (``MaxEnginesReachedError``, 403) and the refusal audited
  (``engine:refused``; that event is committed although the request fails).
- ``renew_lease``: a fresh lease for an engine that holds a seat;
  ``NotActivatedError`` (404) once it was deactivated, so the engine knows to
  activate again.
- ``deactivate_engine``: an administrator frees a seat.

Audit events (subject: the license id, so they appear in its history):
``engine:activated``, ``engine:deactivated``, ``engine:refused``, and
``lease:renewed`` only when a renewal tells an administrator something (the
engine's version changed, or it comes back after its lease lapsed): routine
renewals of every engine every few days would bury the trail, and the
engine's row already shows when it was last seen.

Leases are compact JWS made by ``licensing.leases.issue_lease`` with the
current license key; times are whole seconds, as in the lease's claims.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import select

from licensing.leases import LeaseClaims, issue_lease
from portal.db_base import utc_now
from portal.engines.models import Activation
from portal.errors import (
    ActivationNotFoundError,
    ConflictError,
    LicenseNotFoundError,
    MaxEnginesReachedError,
    NotActivatedError,
)
from portal.events.service import record_event
from portal.events.tags import EventTag
from portal.licenses.models import License

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime, timedelta

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from sqlalchemy.orm import Session

LEASE_LAPSED_ACTOR: Final = "portal:lease-lapsed"


@dataclass(frozen=True)
class LeaseSigner:
    """What signing a lease needs: the current license key, the issuer, the period."""

    signing_key: Ed25519PrivateKey
    issuer: str
    period: timedelta


@dataclass(frozen=True)
class IssuedLease:
    activation: Activation
    lease: str
    created: bool

    @property
    def expires_at(self) -> datetime:
        return self.activation.lease_expires_at


def engine_actor(engine_id: uuid.UUID) -> str:
    """The actor of events an engine causes."""
    return f"engine:{engine_id}"


def _now(now: datetime | None) -> datetime:
    return (now or utc_now()).replace(microsecond=0)


def active_activation(
    session: Session, license_id: uuid.UUID, engine_id: uuid.UUID
) -> Activation | None:
    return session.scalars(
        select(Activation).where(
            Activation.license_id == license_id,
            Activation.engine_id == engine_id,
            Activation.deactivated_at.is_(None),
        )
    ).one_or_none()


def active_activations(session: Session, license_id: uuid.UUID) -> Sequence[Activation]:
    """The engines holding a seat of the license, earliest activated first."""
    return session.scalars(
        select(Activation)
        .where(Activation.license_id == license_id, Activation.deactivated_at.is_(None))
        .order_by(Activation.activated_at, Activation.id)
    ).all()


def _lock_license_seats(session: Session, license_id: uuid.UUID) -> int:
    """Lock the license row until the transaction ends; return its ``max_engines``."""
    max_engines = session.scalars(
        select(License.max_engines).where(License.id == license_id).with_for_update()
    ).one_or_none()
    if max_engines is None:
        raise LicenseNotFoundError(f"no license {license_id}")
    return max_engines


def _sign_lease(activation: Activation, signer: LeaseSigner, now: datetime) -> str:
    claims = LeaseClaims(
        iss=signer.issuer,
        sub=str(activation.engine_id),
        jti=str(activation.id),
        lic=str(activation.license_id),
        iat=now,
        exp=now + signer.period,
    )
    activation.lease_expires_at = claims.exp
    return issue_lease(claims, signer.signing_key)


def _engine_payload(activation: Activation, **extra: Any) -> dict[str, Any]:
    return {
        "activation_id": str(activation.id),
        "engine_id": str(activation.engine_id),
        "hostname": activation.hostname,
        "engine_version": activation.engine_version,
        **extra,
    }


def _refresh(
    session: Session,
    activation: Activation,
    signer: LeaseSigner,
    now: datetime,
    *,
    engine_version: str | None,
    hostname: str | None,
) -> str:
    previous_version = activation.engine_version
    lapsed = activation.lease_expires_at <= now
    if engine_version is not None:
        activation.engine_version = engine_version
    if hostname is not None:
        activation.hostname = hostname
    activation.last_seen_at = now
    lease = _sign_lease(activation, signer, now)
    session.flush()
    reasons = []
    if activation.engine_version != previous_version:
        reasons.append("engine_version_changed")
    if lapsed:
        reasons.append("lease_had_lapsed")
    if reasons:
        record_event(
            session,
            EventTag.LEASE_RENEWED,
            actor=engine_actor(activation.engine_id),
            subject_id=str(activation.license_id),
            payload=_engine_payload(
                activation,
                reasons=reasons,
                previous_engine_version=previous_version,
                lease_expires_at=activation.lease_expires_at.isoformat(),
            ),
        )
    return lease


def _deactivate(session: Session, activation: Activation, *, actor: str, now: datetime) -> None:
    activation.deactivated_at = now
    activation.deactivated_by = actor
    session.flush()
    record_event(
        session,
        EventTag.ENGINE_DEACTIVATED,
        actor=actor,
        subject_id=str(activation.license_id),
        payload=_engine_payload(activation, last_seen_at=activation.last_seen_at.isoformat()),
    )


def _free_lapsed_seats(
    session: Session, active: Sequence[Activation], max_engines: int, now: datetime
) -> int:
    """Reclaim lapsed seats (longest lapsed first) until one is free; return
    how many seats are taken afterwards.
    """
    taken = len(active)
    lapsed = sorted(
        (item for item in active if item.lease_expires_at <= now),
        key=lambda item: item.lease_expires_at,
    )
    for activation in lapsed:
        if taken < max_engines:
            break
        _deactivate(session, activation, actor=LEASE_LAPSED_ACTOR, now=now)
        taken -= 1
    return taken


def activate_engine(
    session: Session,
    license_id: uuid.UUID,
    *,
    engine_id: uuid.UUID,
    engine_version: str,
    hostname: str | None,
    signer: LeaseSigner,
    now: datetime | None = None,
) -> IssuedLease:
    """Give ``engine_id`` a seat of the license (or find the one it holds) and a lease.

    Raises:
        LicenseNotFoundError: No such license.
        MaxEnginesReachedError: Every seat is held by another engine whose lease
            has not lapsed (the refusal is audited and committed).
    """
    now = _now(now)
    max_engines = _lock_license_seats(session, license_id)
    existing = active_activation(session, license_id, engine_id)
    if existing is not None:
        lease = _refresh(
            session, existing, signer, now, engine_version=engine_version, hostname=hostname
        )
        return IssuedLease(activation=existing, lease=lease, created=False)

    taken = _free_lapsed_seats(session, active_activations(session, license_id), max_engines, now)
    if taken >= max_engines:
        record_event(
            session,
            EventTag.ENGINE_REFUSED,
            actor=engine_actor(engine_id),
            subject_id=str(license_id),
            payload={
                "engine_id": str(engine_id),
                "hostname": hostname,
                "engine_version": engine_version,
                "max_engines": max_engines,
                "reason": "max_engines_reached",
            },
        )
        raise MaxEnginesReachedError(
            f"all {max_engines} engine seat(s) of this license are in use; an administrator "
            "can deactivate an engine on the license's page of the portal"
        )

    activation = Activation(
        id=uuid.uuid4(),  # the lease's jti, needed before the row is written
        license_id=license_id,
        engine_id=engine_id,
        hostname=hostname,
        engine_version=engine_version,
        activated_at=now,
        last_seen_at=now,
    )
    lease = _sign_lease(activation, signer, now)
    session.add(activation)
    session.flush()
    record_event(
        session,
        EventTag.ENGINE_ACTIVATED,
        actor=engine_actor(engine_id),
        subject_id=str(license_id),
        payload=_engine_payload(
            activation,
            seats_taken=taken + 1,
            max_engines=max_engines,
            lease_expires_at=activation.lease_expires_at.isoformat(),
        ),
    )
    return IssuedLease(activation=activation, lease=lease, created=True)


def renew_lease(
    session: Session,
    license_id: uuid.UUID,
    *,
    engine_id: uuid.UUID,
    signer: LeaseSigner,
    engine_version: str | None = None,
    hostname: str | None = None,
    now: datetime | None = None,
) -> IssuedLease:
    """A new lease for an engine that holds a seat of the license.

    Raises:
        NotActivatedError: The engine holds no seat (never activated, or deactivated).
    """
    now = _now(now)
    activation = active_activation(session, license_id, engine_id)
    if activation is None:
        raise NotActivatedError(
            "this engine holds no seat of the license (it was deactivated, or never "
            "activated): activate it again"
        )
    lease = _refresh(
        session, activation, signer, now, engine_version=engine_version, hostname=hostname
    )
    return IssuedLease(activation=activation, lease=lease, created=False)


def deactivate_engine(
    session: Session,
    license_id: uuid.UUID,
    activation_id: uuid.UUID,
    *,
    actor: str,
    now: datetime | None = None,
) -> Activation:
    """Free the seat: the engine's next renewal is refused with ``not_activated``.

    Raises:
        ActivationNotFoundError: No such activation of this license.
        ConflictError: It was already deactivated.
    """
    activation = session.get(Activation, activation_id)
    if activation is None or activation.license_id != license_id:
        raise ActivationNotFoundError("there is no such engine activation on this license")
    if not activation.is_active:
        raise ConflictError("that engine was already deactivated")
    _deactivate(session, activation, actor=actor, now=_now(now))
    return activation
