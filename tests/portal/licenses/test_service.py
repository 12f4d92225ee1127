"""Issuing, suspending, reinstating, revoking and renewing licenses."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from licensing.exceptions import LicenseRevokedError, SigningKeyError
from licensing.keys import key_id
from licensing.repository import Repository
from licensing.tokens import verify_license
from portal.errors import (
    InvalidInputError,
    LicenseNotFoundError,
    LicenseStateError,
    LinkUnusableError,
)
from portal.events.service import list_events
from portal.events.tags import EventTag
from portal.licenses import service
from portal.licenses.models import License, LicenseStatus
from portal.magic_links.models import LinkPurpose
from portal.magic_links.service import create_link, resolve_link
from portal.organisations.service import get_or_create_organisation
from portal.repository.service import license_signing_key
from tests.portal.support import ACTOR, savepoint

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.orm import Session

    from portal.settings import Settings


def _tags(session: Session, license_: License) -> list[str]:
    return [event.tag for event in reversed(list_events(session, subject_id=str(license_.id)))]


def test_issued_token_verifies_and_carries_the_license(
    session: Session, initialised: Settings
) -> None:
    signing_key = license_signing_key(initialised).key
    organisation = get_or_create_organisation(session, "Example Chat Ltd", actor=ACTOR)
    issued = service.issue_license(
        session,
        organisation,
        days=30,
        channels=["stable", "beta"],
        max_engines=3,
        features=["review_queue"],
        signing_key=signing_key,
        issuer=initialised.portal_url,
        actor=ACTOR,
    )
    verified = verify_license(issued.token, {key_id(signing_key): signing_key.public_key()})
    claims = verified.claims
    license_ = issued.license
    assert claims.jti == str(license_.id)
    assert claims.sub == str(organisation.id)
    assert claims.iss == initialised.portal_url
    assert claims.org_name == "Example Chat Ltd"
    assert claims.channels == ("beta", "stable")
    assert (claims.max_engines, claims.features) == (3, ("review_queue",))
    assert claims.exp - claims.nbf == timedelta(days=30)
    assert license_.status is LicenseStatus.ACTIVE
    assert license_.key_id == verified.kid
    assert _tags(session, license_) == ["license:issued"]


def test_license_is_stored_with_aware_times(
    session: Session, make_license: Callable[..., License]
) -> None:
    license_id = make_license().id
    session.expire_all()
    stored = service.get_license(session, license_id)
    assert stored.expires_at.tzinfo is not None
    assert stored.expires_at - stored.not_before == timedelta(days=30)
    assert stored.organisation.name == "Example Chat Ltd"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"days": 0}, "between 1 and"),
        ({"channels": []}, "at least one channel"),
        ({"channels": ["nightly"]}, "unknown channel"),
        ({"max_engines": 0}, "max engines"),
        ({"features": ["Not A Feature"]}, "feature"),
    ],
)
def test_issue_refuses_out_of_range_input(
    make_license: Callable[..., License], overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        make_license(**overrides)


def test_suspend_then_reinstate(session: Session, make_license: Callable[..., License]) -> None:
    license_ = make_license()
    suspended = service.suspend_license(session, license_.id, reason="unpaid", actor=ACTOR)
    assert suspended.status is LicenseStatus.SUSPENDED
    reinstated = service.reinstate_license(session, license_.id, actor=ACTOR)
    assert reinstated.status is LicenseStatus.ACTIVE
    assert _tags(session, license_) == [
        "license:issued",
        "license:suspended",
        "license:reinstated",
    ]


def test_reinstating_an_active_license_is_refused(
    session: Session, make_license: Callable[..., License]
) -> None:
    license_ = make_license()
    with pytest.raises(LicenseStateError):
        service.reinstate_license(session, license_.id, actor=ACTOR)


def test_revoke_publishes_the_revocation_list(
    session: Session, make_license: Callable[..., License], repository: Repository
) -> None:
    license_ = make_license()
    before = repository.versions().targets
    service.revoke_license(
        session, license_.id, reason="  contract   ended ", repository=repository, actor=ACTOR
    )
    assert license_.status is LicenseStatus.REVOKED
    assert license_.revocation_reason == "contract ended"
    assert license_.revoked_at == license_.status_changed_at
    published = Repository(repository.directory, []).revocations()
    assert published.revoked_ids == {str(license_.id)}
    assert repository.versions().targets == before + 1
    events = list_events(session, subject_id=str(license_.id))
    assert events[0].tag == "license:revoked"
    assert events[0].payload["reason"] == "contract ended"


def _dashboard_link(session: Session, license_: License) -> str:
    return create_link(
        session,
        LinkPurpose.ORGANISATION_DASHBOARD,
        str(license_.organisation_id),
        lifetime=timedelta(days=30),
        one_time=False,
    )


def test_revoking_the_last_license_in_force_withdraws_the_dashboard_links(
    session: Session, make_license: Callable[..., License], repository: Repository
) -> None:
    first = make_license("Linked Chat Ltd")
    second = make_license("Linked Chat Ltd")
    token = _dashboard_link(session, first)
    service.revoke_license(session, first.id, reason="abuse", repository=repository, actor=ACTOR)
    # The organisation still holds a license: its contact still sees the dashboard.
    assert resolve_link(session, token, LinkPurpose.ORGANISATION_DASHBOARD)
    service.suspend_license(session, second.id, reason="unpaid", actor=ACTOR)
    assert resolve_link(session, token, LinkPurpose.ORGANISATION_DASHBOARD)

    service.revoke_license(session, second.id, reason="abuse", repository=repository, actor=ACTOR)
    with pytest.raises(LinkUnusableError):
        resolve_link(session, token, LinkPurpose.ORGANISATION_DASHBOARD)
    (event,) = list_events(session, tag=EventTag.ORGANISATION_DASHBOARD_LINKS_WITHDRAWN)
    assert event.subject_id == str(second.organisation_id)
    assert event.actor == ACTOR
    assert event.payload == {
        "links": 1,
        "reason": f"license {second.id} revoked, the last one in force",
    }


def test_revoking_with_no_dashboard_link_records_no_withdrawal(
    session: Session, make_license: Callable[..., License], repository: Repository
) -> None:
    license_ = make_license()
    service.revoke_license(session, license_.id, reason="abuse", repository=repository, actor=ACTOR)
    assert not list_events(session, tag=EventTag.ORGANISATION_DASHBOARD_LINKS_WITHDRAWN)


def test_revoked_license_token_is_refused_by_a_verifier(
    session: Session,
    make_license: Callable[..., License],
    repository: Repository,
    initialised: Settings,
) -> None:
    license_ = make_license()
    key = license_signing_key(initialised).key
    token = service.sign_license(license_, signing_key=key, issuer=initialised.portal_url)
    service.revoke_license(session, license_.id, reason="abuse", repository=repository, actor=ACTOR)
    with pytest.raises(LicenseRevokedError):
        verify_license(
            token,
            repository.license_keys().keys,
            revoked=repository.revocations().revoked_ids,
        )


def test_revoking_twice_is_refused(
    session: Session, make_license: Callable[..., License], repository: Repository
) -> None:
    license_ = make_license()
    service.revoke_license(session, license_.id, reason="abuse", repository=repository, actor=ACTOR)
    with pytest.raises(LicenseStateError, match="is revoked"):
        service.revoke_license(
            session, license_.id, reason="again", repository=repository, actor=ACTOR
        )


def test_revocation_that_cannot_be_published_changes_nothing(
    session: Session, make_license: Callable[..., License], repository: Repository
) -> None:
    license_ = make_license()
    unsigned = Repository(repository.directory, [])
    with savepoint(session), pytest.raises(SigningKeyError):
        service.revoke_license(
            session, license_.id, reason="abuse", repository=unsigned, actor=ACTOR
        )
    session.expire_all()
    assert service.get_license(session, license_.id).status is LicenseStatus.ACTIVE
    assert repository.revocations().revoked_ids == frozenset()


def test_revoke_needs_a_reason(
    session: Session, make_license: Callable[..., License], repository: Repository
) -> None:
    license_ = make_license()
    with pytest.raises(InvalidInputError, match="reason"):
        service.revoke_license(session, license_.id, reason=" ", repository=repository, actor=ACTOR)


def test_unknown_license_is_a_license_problem(session: Session, repository: Repository) -> None:
    with pytest.raises(LicenseNotFoundError) as raised:
        service.revoke_license(
            session, uuid.uuid4(), reason="abuse", repository=repository, actor=ACTOR
        )
    assert raised.value.exit_code == 3


def test_parse_license_id_refuses_what_is_not_an_id() -> None:
    with pytest.raises(InvalidInputError):
        service.parse_license_id("lic-0001")


def test_renew_extends_expiry_and_signs_a_token_with_the_same_id(
    session: Session, make_license: Callable[..., License], initialised: Settings
) -> None:
    license_ = make_license(days=10)
    expires = license_.expires_at
    key = license_signing_key(initialised).key
    renewed = service.renew_license(
        session, license_.id, days=365, signing_key=key, issuer=initialised.portal_url, actor=ACTOR
    )
    assert license_.expires_at == expires + timedelta(days=365)
    claims = verify_license(renewed.token, {key_id(key): key.public_key()}).claims
    assert (claims.jti, claims.exp) == (str(license_.id), license_.expires_at)
    assert _tags(session, license_)[-1] == "license:renewed"


@pytest.mark.parametrize("status", [LicenseStatus.SUSPENDED, LicenseStatus.REVOKED])
def test_only_active_licenses_are_renewed(
    session: Session,
    make_license: Callable[..., License],
    initialised: Settings,
    status: LicenseStatus,
) -> None:
    license_ = make_license()
    license_.transition(status, at=license_.issued_at)
    key = license_signing_key(initialised).key
    with pytest.raises(LicenseStateError):
        service.renew_license(
            session,
            license_.id,
            days=30,
            signing_key=key,
            issuer=initialised.portal_url,
            actor=ACTOR,
        )
