"""This engine's seat at the portal: activation, lease renewal, and the portal's refusals.

Rules:

- A home has one engine id (``online_state.engine_id``), made at the first activation
  and kept: activating again (re-``init``, a renewed license) confirms the same seat.
- ``init --portal`` activates (``POST /api/v1/activations``). ``update`` renews the lease
  of an active activation of the same portal, engine and license; otherwise (activation
  pending because the portal was unreachable, refused for lack of seats, or made for
  another license) it activates first. An engine the portal no longer knows
  (``404 not_activated``: an administrator deactivated it) is not re-activated behind the
  administrator's back: ``update`` stops with exit 3 and says how to activate again.
- The lease is stored as received (``trust/lease.jwt``) and verified with
  ``licensing.leases.verify_lease`` and the license keys the engine holds, bound to this
  engine id and license id. Before the first update the keys are not there yet; the lease
  is then recorded as unverified and verified by the next ``update``. A lease that fails
  verification stops the update (exit 3).
- Every refusal goes through ``portal_failure``: revoked or suspended licenses are
  recorded (``trust/portal-denial.json``) so the engine stops scoring; the other refusals
  only fail the command.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from tuf.api.exceptions import DownloadError

from licensing.exceptions import LicensingError
from licensing.leases import verify_lease
from scoring_engine import online_state, trust
from scoring_engine.errors import VigilError
from scoring_engine.online_state import ActivationRecord
from scoring_engine.remote import (
    NOT_ACTIVATED,
    STOPPING_REFUSALS,
    LeaseGrant,
    PortalApi,
    PortalRefusedError,
    PortalTransport,
    RefusalContext,
    engine_error_for,
)
from scoring_engine.trust import (
    LicenseCheckError,
    PortalUnreachableError,
    engine_error,
    stored_license_keys,
)

if TYPE_CHECKING:
    from datetime import datetime

    from licensing.targets import LicenseKeySet
    from licensing.tokens import LicenseClaims
    from scoring_engine.home import EngineHome


def refusal_context(
    portal_url: str, claims: LicenseClaims, channel: str | None = None
) -> RefusalContext:
    return RefusalContext(
        portal_url=portal_url,
        license_id=claims.jti,
        max_engines=claims.max_engines,
        channel=channel,
    )


def portal_failure(
    home: EngineHome, error: BaseException, context: RefusalContext, now: datetime
) -> VigilError | None:
    """The engine error for a failed portal request, after recording what must stop scoring.

    Returns None when ``error`` holds no portal failure (the caller maps it otherwise).
    """
    failure = engine_error_for(error, context)
    if isinstance(failure, PortalRefusedError) and failure.code in STOPPING_REFUSALS:
        online_state.record_denial(
            home, failure.code, context.license_id, failure.detail, now, context.portal_url
        )
    return failure


@dataclass(frozen=True)
class Seat:
    """An activation the portal confirmed in this run."""

    record: ActivationRecord
    lease: str
    activated_now: bool


def _record_from_grant(
    portal_url: str,
    engine: str,
    claims: LicenseClaims,
    grant: LeaseGrant,
    now: datetime,
    previous: ActivationRecord | None,
    *,
    activated: bool,
) -> ActivationRecord:
    activated_at = now
    if previous is not None and previous.activated_at is not None and not activated:
        activated_at = previous.activated_at
    activation_id = grant.activation_id or (previous.activation_id if previous else None)
    return ActivationRecord(
        portal=portal_url,
        engine_id=engine,
        license_id=claims.jti,
        status=online_state.ACTIVE,
        activation_id=activation_id,
        activated_at=activated_at,
        renewed_at=now,
        lease_expires_at=grant.lease_expires_at,
        lease_verified=False,
    )


def activate(
    home: EngineHome,
    transport: PortalTransport,
    claims: LicenseClaims,
    now: datetime,
) -> Seat:
    """Take (or confirm) this engine's seat: ``POST /api/v1/activations``.

    The outcome is recorded whatever it is: ``pending`` if the portal could not be
    reached, ``refused`` if the seats are used up.

    Raises:
        PortalRefusedError: The portal refused the license or has no free seat (exit 3).
        PortalUnreachableError: No answer (exit 5).
    """
    portal_url = transport.portal_url
    engine = online_state.engine_id(home, now, create=True)
    assert engine is not None  # created above
    previous = online_state.read_activation(home)
    context = refusal_context(portal_url, claims)
    try:
        grant = PortalApi(transport).activate(engine)
    except DownloadError as error:
        failure = portal_failure(home, error, context, now)
        if failure is None:
            raise
        status = online_state.PENDING
        if isinstance(failure, PortalRefusedError):
            status = online_state.REFUSED
        online_state.write_activation(
            home,
            ActivationRecord(
                portal=portal_url,
                engine_id=engine,
                license_id=claims.jti,
                status=status,
                detail=str(failure),
            ),
            lease=None,
        )
        raise failure from None
    record = _record_from_grant(portal_url, engine, claims, grant, now, previous, activated=True)
    record = _verified_if_possible(home, record, grant.lease, now)
    online_state.write_activation(home, record, grant.lease)
    return Seat(record=record, lease=grant.lease, activated_now=True)


def keep_seat(
    home: EngineHome,
    transport: PortalTransport,
    claims: LicenseClaims,
    now: datetime,
) -> Seat:
    """Renew the lease of this engine's activation, activating first if there is none.

    Raises:
        PortalRefusedError: Refused license, no free seat, or deactivated engine (exit 3).
        PortalUnreachableError: No answer (exit 5).
    """
    portal_url = transport.portal_url
    engine = online_state.engine_id(home, now, create=False)
    previous = online_state.read_activation(home)
    if (
        engine is None
        or previous is None
        or not previous.is_active_for(portal_url, engine, claims.jti)
    ):
        if (
            previous is not None
            and previous.status == online_state.DEACTIVATED
            and (
                previous.portal,
                previous.engine_id,
                previous.license_id,
            )
            == (portal_url, engine, claims.jti)
        ):
            raise PortalRefusedError(previous.detail or "engine deactivated", NOT_ACTIVATED)
        return activate(home, transport, claims, now)
    context = refusal_context(portal_url, claims)
    try:
        grant = PortalApi(transport).renew(engine)
    except DownloadError as error:
        failure = portal_failure(home, error, context, now)
        if failure is None:
            raise
        if isinstance(failure, PortalRefusedError) and failure.code == NOT_ACTIVATED:
            online_state.write_activation(
                home,
                replace(previous, status=online_state.DEACTIVATED, detail=str(failure)),
                lease=None,
            )
        raise failure from None
    record = _record_from_grant(portal_url, engine, claims, grant, now, previous, activated=False)
    online_state.write_activation(home, record, grant.lease)
    return Seat(record=record, lease=grant.lease, activated_now=False)


def _verified_if_possible(
    home: EngineHome, record: ActivationRecord, lease: str, now: datetime
) -> ActivationRecord:
    """Verify the lease now if the license keys are already here; else leave it unverified."""
    try:
        keys = stored_license_keys(home)
    except VigilError:
        return record
    if keys is None:
        return record
    return check_lease(record, lease, keys, now)


def check_lease(
    record: ActivationRecord, lease: str, keys: LicenseKeySet, now: datetime
) -> ActivationRecord:
    """The record with the lease verified (its expiry from the signed claims).

    Raises:
        LicenseCheckError: The lease does not verify for this engine and license (exit 3).
    """
    try:
        verified = verify_lease(
            lease,
            keys.keys,
            reference_time=now,
            engine_id=record.engine_id,
            license_id=record.license_id,
            config=trust.LIMITS,
        )
    except LicensingError as error:
        refused = engine_error(error)
        raise type(refused)(
            f"the portal's lease for this engine does not verify: {refused}; "
            "the portal may be misconfigured, or not the portal that issued the license"
        ) from None
    activation_id = record.activation_id or verified.claims.activation_id
    return replace(
        record,
        activation_id=activation_id,
        lease_expires_at=verified.expires_at,
        lease_verified=True,
    )


def verify_stored_lease(home: EngineHome, keys: LicenseKeySet, now: datetime) -> None:
    """Verify the stored lease of the active activation with ``keys`` and record it.

    Raises:
        LicenseCheckError: It does not verify.
    """
    record = online_state.read_activation(home)
    lease = online_state.read_lease(home)
    if record is None or record.status != online_state.ACTIVE or lease is None:
        raise LicenseCheckError("this engine holds no lease from the portal")
    online_state.write_activation(home, check_lease(record, lease, keys, now), lease=None)


def unreachable_at_init(error: PortalUnreachableError) -> PortalUnreachableError:
    return PortalUnreachableError(
        f"{error}; the trust root and license are stored: run `vigil-engine update` once "
        "the portal is reachable to activate this engine"
    )
