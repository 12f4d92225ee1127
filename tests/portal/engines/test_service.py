"""Seats and leases in the service layer: lapsed seats, deactivation, and
which renewals the audit trail records.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from licensing.leases import verify_lease
from portal.engines import service
from portal.engines.models import Activation
from portal.errors import ActivationNotFoundError, ConflictError, MaxEnginesReachedError
from portal.events.service import list_events
from portal.events.tags import EventTag
from portal.repository.service import license_signing_key, open_repository
from tests.portal.support import savepoint

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.orm import Session

    from portal.settings import Settings
    from tests.portal.support import Licensed

# Seats are tested at times of their own; leases are verified at the same times.
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.fixture
def signer(initialised: Settings) -> service.LeaseSigner:
    return service.LeaseSigner(
        signing_key=license_signing_key(initialised).key,
        issuer=initialised.portal_url,
        period=timedelta(days=7),
    )


def _activate(session: Session, licensed: Licensed, signer: service.LeaseSigner, **kwargs):
    values = {"engine_id": uuid.uuid4(), "engine_version": "0.1.0", "hostname": "h1", "now": NOW}
    values.update(kwargs)
    return service.activate_engine(session, licensed.license.id, signer=signer, **values)


def _tags(session: Session, licensed: Licensed) -> list[str]:
    return [event.tag for event in list_events(session, subject_id=str(licensed.license.id))]


def test_a_seat_whose_lease_lapsed_goes_to_the_next_engine(
    session: Session, make_licensed: Callable[..., Licensed], signer: service.LeaseSigner
) -> None:
    licensed = make_licensed(max_engines=1)
    gone = _activate(session, licensed, signer).activation
    later = NOW + timedelta(days=8)
    newcomer = _activate(session, licensed, signer, now=later)
    assert newcomer.created
    assert gone.deactivated_by == service.LEASE_LAPSED_ACTOR
    assert service.active_activations(session, licensed.license.id) == [newcomer.activation]
    deactivated = list_events(session, tag=EventTag.ENGINE_DEACTIVATED)
    assert [event.actor for event in deactivated] == [service.LEASE_LAPSED_ACTOR]
    # The engine that lapsed learns it on its next renewal, and may activate again.
    with pytest.raises(service.NotActivatedError):
        service.renew_lease(
            session, licensed.license.id, engine_id=gone.engine_id, signer=signer, now=later
        )


def test_a_seat_with_a_live_lease_is_never_taken(
    session: Session, make_licensed: Callable[..., Licensed], signer: service.LeaseSigner
) -> None:
    licensed = make_licensed(max_engines=1)
    holder = _activate(session, licensed, signer).activation
    with savepoint(session), pytest.raises(MaxEnginesReachedError):
        _activate(session, licensed, signer, now=NOW + timedelta(days=6))
    assert holder.is_active


def test_routine_renewals_are_not_audited_but_notable_ones_are(
    session: Session, make_licensed: Callable[..., Licensed], signer: service.LeaseSigner
) -> None:
    licensed = make_licensed()
    activation = _activate(session, licensed, signer).activation
    for day in (3, 6):
        service.renew_lease(
            session,
            licensed.license.id,
            engine_id=activation.engine_id,
            signer=signer,
            now=NOW + timedelta(days=day),
        )
    assert EventTag.LEASE_RENEWED not in _tags(session, licensed)
    # Back after the lease lapsed (and nobody needed the seat): renewed, and recorded.
    renewed = service.renew_lease(
        session,
        licensed.license.id,
        engine_id=activation.engine_id,
        signer=signer,
        engine_version="0.2.0",
        now=NOW + timedelta(days=30),
    )
    [event] = list_events(session, tag=EventTag.LEASE_RENEWED)
    assert event.payload["reasons"] == ["engine_version_changed", "lease_had_lapsed"]
    assert renewed.expires_at == NOW + timedelta(days=37)


def test_leases_carry_the_activation_and_engine(
    session: Session,
    make_licensed: Callable[..., Licensed],
    signer: service.LeaseSigner,
    initialised: Settings,
) -> None:
    licensed = make_licensed()
    engine_id = uuid.uuid4()
    issued = _activate(session, licensed, signer, engine_id=engine_id)
    keys = open_repository(initialised, signing=False).license_keys().keys
    lease = verify_lease(issued.lease, keys, reference_time=NOW)
    assert (lease.claims.sub, lease.claims.jti, lease.claims.lic) == (
        str(engine_id),
        str(issued.activation.id),
        str(licensed.license.id),
    )
    assert issued.activation.lease_expires_at == lease.expires_at == NOW + timedelta(days=7)


def test_deactivation_frees_the_seat_once(
    session: Session, make_licensed: Callable[..., Licensed], signer: service.LeaseSigner
) -> None:
    licensed = make_licensed(max_engines=1)
    activation = _activate(session, licensed, signer).activation
    service.deactivate_engine(
        session, licensed.license.id, activation.id, actor="admin@portal.example"
    )
    assert activation.deactivated_by == "admin@portal.example"
    with pytest.raises(ConflictError, match="already"):
        service.deactivate_engine(session, licensed.license.id, activation.id, actor="x")
    # The same engine may activate again: a new seat (and a new row).
    again = _activate(session, licensed, signer, engine_id=activation.engine_id)
    assert again.created
    assert again.activation.id != activation.id
    assert session.query(Activation).count() == 2


def test_an_activation_of_another_license_cannot_be_deactivated_through_this_one(
    session: Session, make_licensed: Callable[..., Licensed], signer: service.LeaseSigner
) -> None:
    mine, theirs = make_licensed("Mine Chat"), make_licensed("Their Chat")
    activation = _activate(session, theirs, signer).activation
    with pytest.raises(ActivationNotFoundError):
        service.deactivate_engine(session, mine.license.id, activation.id, actor="x")
    assert activation.is_active


def test_the_database_allows_one_active_seat_per_engine_and_license(
    session: Session, make_licensed: Callable[..., Licensed]
) -> None:
    from sqlalchemy.exc import IntegrityError  # noqa: PLC0415

    licensed = make_licensed()
    engine_id = uuid.uuid4()

    def row(**values: object) -> Activation:
        return Activation(
            license_id=licensed.license.id,
            engine_id=engine_id,
            engine_version="0.1.0",
            lease_expires_at=NOW,
            **values,
        )

    session.add_all([row(deactivated_at=NOW, deactivated_by="x"), row()])
    session.flush()

    def add_another_active_seat() -> None:
        session.add(row())
        session.flush()

    with savepoint(session), pytest.raises(IntegrityError):
        add_another_active_seat()
