"""The application state machine and the vetting services."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from portal.admin.models import Admin
from portal.applications import service
from portal.applications.forms import read_application
from portal.applications.models import (
    ALLOWED_TRANSITIONS,
    Application,
    ApplicationStatus,
    ChecklistItem,
)
from portal.errors import ChecklistIncompleteError, InvalidTransitionError, LinkUnusableError
from portal.licenses.models import License, LicenseStatus
from portal.magic_links.models import MagicLink
from portal.mail.service import Postbox
from portal.organisations.service import get_or_create_organisation
from portal.repository.service import license_signing_key
from tests.portal.support import ACTOR, APPLICATION, outbox, savepoint

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from portal.settings import Settings
    from tests.portal.support import AdminAccount


@pytest.fixture
def admin(session: Session, admin_account: AdminAccount) -> Admin:
    return session.scalars(select(Admin).where(Admin.email == admin_account.email)).one()


@pytest.fixture
def postbox(initialised: Settings) -> Postbox:
    return Postbox.for_settings(initialised)


@pytest.fixture
def application(session: Session, initialised: Settings, postbox: Postbox) -> Application:
    details = read_application(APPLICATION).data
    assert details is not None
    return service.submit_application(session, initialised, postbox, details)


def _complete_checklist(session: Session, application: Application, admin: Admin) -> None:
    for item in ChecklistItem:
        service.set_checklist_item(
            session, application.id, item, checked=True, note="ok", admin=admin
        )


def test_final_states_allow_nothing_and_open_ones_can_be_declined() -> None:
    for status, targets in ALLOWED_TRANSITIONS.items():
        assert (not targets) == (status in {ApplicationStatus.APPROVED, ApplicationStatus.DECLINED})
        if targets:
            assert ApplicationStatus.DECLINED in targets


@pytest.mark.parametrize("status", list(ApplicationStatus))
def test_transition_refuses_moves_outside_the_table(status: ApplicationStatus) -> None:
    from datetime import UTC, datetime  # noqa: PLC0415

    application = Application(status=status)
    application.id = 7
    for target in ApplicationStatus:
        if target in ALLOWED_TRANSITIONS[status]:
            continue
        with pytest.raises(InvalidTransitionError, match="A-000007"):
            application.transition(target, at=datetime.now(UTC))
        assert application.status is status


def test_submitting_mails_a_status_link_and_stores_only_its_hash(
    session: Session, application: Application, initialised: Settings, postbox: Postbox
) -> None:
    postbox.deliver()
    [message] = outbox(initialised.outbox_dir)
    token = (
        message.get_body(preferencelist=("plain",))
        .get_content()
        .split("/applications/status/")[1]
        .split()[0]
    )  # type: ignore[union-attr]
    links = session.scalars(select(MagicLink)).all()
    assert len(links) == 1
    assert token.split(".")[1] not in (links[0].verifier_sha256, links[0].id)
    assert service.application_for_status_link(session, token) is application
    with pytest.raises(LinkUnusableError):
        service.application_for_status_link(
            session, token[:-1] + ("A" if token[-1] != "A" else "B")
        )


def test_approval_needs_the_whole_checklist(
    session: Session,
    application: Application,
    admin: Admin,
    initialised: Settings,
    postbox: Postbox,
) -> None:
    key = license_signing_key(initialised).key
    for item in list(ChecklistItem)[:-1]:
        service.set_checklist_item(
            session, application.id, item, checked=True, note="", admin=admin
        )
    with savepoint(session), pytest.raises(ChecklistIncompleteError, match="Terms of use accepted"):
        service.approve(
            session,
            initialised,
            postbox,
            application.id,
            max_engines=1,
            signing_key=key,
            admin=admin,
        )
    service.set_checklist_item(
        session, application.id, ChecklistItem.TERMS_ACCEPTED, checked=True, note="", admin=admin
    )
    approved = service.approve(
        session, initialised, postbox, application.id, max_engines=3, signing_key=key, admin=admin
    )
    assert approved.status is ApplicationStatus.APPROVED
    assert approved.license_id is not None
    license_ = session.get(License, approved.license_id)
    assert license_ is not None
    assert license_.max_engines == 3
    assert license_.channels == ["stable"]
    assert license_.status is LicenseStatus.ACTIVE
    assert (license_.expires_at - license_.issued_at).days == initialised.approved_license_days


def test_unticking_an_item_blocks_approval_again(
    session: Session,
    application: Application,
    admin: Admin,
    initialised: Settings,
    postbox: Postbox,
) -> None:
    _complete_checklist(session, application, admin)
    service.set_checklist_item(
        session,
        application.id,
        ChecklistItem.MODERATION_CAPACITY,
        checked=False,
        note="too few",
        admin=admin,
    )
    assert service.missing_checklist_items(application) == [ChecklistItem.MODERATION_CAPACITY]


def test_a_declined_application_is_closed(
    session: Session,
    application: Application,
    admin: Admin,
    initialised: Settings,
    postbox: Postbox,
) -> None:
    service.decline(
        session, initialised, postbox, application.id, "Not a chat platform.", admin=admin
    )
    with savepoint(session), pytest.raises(InvalidTransitionError):
        service.defer(session, application.id, "", admin=admin)
    with savepoint(session), pytest.raises(InvalidTransitionError, match="vetting is closed"):
        service.set_checklist_item(
            session,
            application.id,
            ChecklistItem.TERMS_ACCEPTED,
            checked=True,
            note="",
            admin=admin,
        )


def test_a_deferred_application_can_still_be_approved(
    session: Session,
    application: Application,
    admin: Admin,
    initialised: Settings,
    postbox: Postbox,
) -> None:
    service.defer(session, application.id, "waiting for the board", admin=admin)
    _complete_checklist(session, application, admin)
    key = license_signing_key(initialised).key
    service.approve(
        session, initialised, postbox, application.id, max_engines=1, signing_key=key, admin=admin
    )
    assert application.status is ApplicationStatus.APPROVED


def test_replying_without_an_open_question_is_refused(
    session: Session, application: Application, initialised: Settings, postbox: Postbox
) -> None:
    token = service.status_link(initialised, session, application).rsplit("/", 1)[1]
    with pytest.raises(InvalidTransitionError, match="no open question"):
        service.reply_to_request(session, token, "hello")


def test_approving_adds_a_license_to_an_existing_organisation_of_that_name(
    session: Session,
    application: Application,
    admin: Admin,
    initialised: Settings,
    postbox: Postbox,
) -> None:
    existing = get_or_create_organisation(session, "Example Chat Ltd", actor=ACTOR)
    assert service.existing_organisation_named(session, application)
    _complete_checklist(session, application, admin)
    key = license_signing_key(initialised).key
    service.approve(
        session, initialised, postbox, application.id, max_engines=1, signing_key=key, admin=admin
    )
    assert application.organisation_id == existing.id


def test_the_queue_is_paginated_oldest_first(
    session: Session, initialised: Settings, postbox: Postbox
) -> None:
    details = read_application(APPLICATION).data
    assert details is not None
    created = [service.submit_application(session, initialised, postbox, details) for _ in range(5)]
    page = service.queue_page(session, status_filter="submitted", number=2, per_page=2)
    assert [item.id for item in page.items] == [created[2].id, created[3].id]
    assert (page.total, page.pages, page.has_previous, page.has_next) == (5, 3, True, True)
    newest_first = service.queue_page(session, status_filter="all", number=1, per_page=1)
    assert newest_first.items[0].id == created[-1].id
    assert service.status_counts(session)["open"] == 5
