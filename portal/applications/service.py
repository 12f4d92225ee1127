"""The application lifecycle: one service function per step, each audited.

- ``submit_application`` (public): a ``submitted`` application and an e-mailed
  status link (``/applications/status/{token}``, expiring, reusable).
- ``set_checklist_item``, ``add_note``: the administrators' vetting records.
- ``request_information`` → the applicant ``reply_to_request``s → back in the queue.
- ``defer``, ``decline`` (with a reason the applicant is told), ``approve``
  (checklist complete): each moves the state machine of ``models`` once.
- ``approve`` creates (or finds) the organisation, issues its license with
  ``portal.licenses.service.issue_license`` and e-mails a one-time download link.

Functions flush, never commit; e-mail is queued on the caller's ``Postbox``.
Applicants act as ``applicant``: their address is personal data and the audit
trail cannot be edited, so events name applications by their label only.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Final

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from portal.applications.models import (
    ALLOWED_TRANSITIONS,
    Application,
    ApplicationNote,
    ApplicationStatus,
    ChecklistEntry,
    ChecklistItem,
    InformationRequest,
    application_label,
)
from portal.applications.schemas import QueueFilter
from portal.bundles.models import Channel
from portal.db_base import utc_now
from portal.errors import (
    ApplicationNotFoundError,
    ChecklistIncompleteError,
    InvalidInputError,
    InvalidTransitionError,
)
from portal.events.service import record_event, subject_history
from portal.events.tags import EventTag
from portal.licenses.delivery import send_download_link
from portal.licenses.service import issue_license
from portal.magic_links.models import LinkPurpose
from portal.magic_links.service import create_link, resolve_link
from portal.organisations.service import get_or_create_organisation, get_organisation_by_name
from portal.pagination import Page, paginate

if TYPE_CHECKING:
    from collections.abc import Sequence

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from sqlalchemy.orm import Session

    from portal.admin.models import Admin
    from portal.applications.schemas import ApplicationDetails
    from portal.events.models import Event
    from portal.mail.service import Postbox
    from portal.settings import Settings

APPLICANT: Final = "applicant"
OPEN_STATUSES: Final = tuple(status for status in ApplicationStatus if not status.is_final)
QUEUE_FILTERS: Final = (
    QueueFilter("submitted", "In the queue"),
    QueueFilter("information_requested", "Waiting for applicant"),
    QueueFilter("deferred", "Deferred"),
    QueueFilter("open", "All open"),
    QueueFilter("approved", "Approved"),
    QueueFilter("declined", "Declined"),
    QueueFilter("all", "All"),
)
DEFAULT_QUEUE_FILTER: Final = "submitted"


def status_link(settings: Settings, session: Session, application: Application) -> str:
    """A fresh status link for the applicant (each e-mail carries its own)."""
    token = create_link(
        session,
        LinkPurpose.APPLICATION_STATUS,
        str(application.id),
        lifetime=timedelta(days=settings.status_link_days),
        one_time=False,
    )
    return f"{settings.portal_url}/applications/status/{token}"


def _mail_applicant(
    settings: Settings,
    session: Session,
    postbox: Postbox,
    application: Application,
    template: str,
    **context: object,
) -> None:
    postbox.queue(
        template,
        to=application.contact_email,
        context={
            "application": application,
            "status_link": status_link(settings, session, application),
            "link_days": settings.status_link_days,
            **context,
        },
    )


def _event(
    session: Session,
    tag: EventTag,
    application: Application,
    *,
    actor: str,
    **payload: object,
) -> Event:
    return record_event(
        session,
        tag,
        actor=actor,
        subject_id=application.label,
        payload={"status": application.status.value, **payload},
    )


#### Applicants ####


def submit_application(
    session: Session, settings: Settings, postbox: Postbox, details: ApplicationDetails
) -> Application:
    """Store a new application and e-mail its status link to the contact."""
    now = utc_now()
    application = Application(
        organization_name=details.organization_name,
        website=details.website,
        country=details.country,
        contact_name=details.contact_name,
        contact_email=details.contact_email,
        platform_description=details.platform_description,
        offers_chat=details.offers_chat,
        user_age_range=details.user_age_range,
        monthly_active_users=details.monthly_active_users,
        moderation_team_size=details.moderation_team_size,
        escalation_contact=details.escalation_contact,
        ncmec_esp_id=details.ncmec_esp_id,
        terms_accepted_at=now,
        status=ApplicationStatus.SUBMITTED,
        submitted_at=now,
        status_changed_at=now,
    )
    session.add(application)
    session.flush()
    _event(
        session,
        EventTag.APPLICATION_SUBMITTED,
        application,
        actor=APPLICANT,
        organisation=application.organization_name,
    )
    _mail_applicant(settings, session, postbox, application, "application-received")
    return application


def application_for_status_link(session: Session, token: str) -> Application:
    """The application a status link shows.

    Raises:
        LinkUnusableError: The link is unknown or expired.
    """
    link = resolve_link(session, token, LinkPurpose.APPLICATION_STATUS)
    return get_application(session, int(link.subject_id))


def reply_to_request(session: Session, token: str, reply: str) -> Application:
    """The applicant's answer to the open question; the application returns to the queue.

    Raises:
        LinkUnusableError: The status link is unknown or expired.
        InvalidTransitionError: No question is waiting for an answer.
    """
    application = application_for_status_link(session, token)
    request = application.open_request
    if request is None:
        raise InvalidTransitionError(f"application {application.label} has no open question")
    if not reply.strip():
        raise InvalidInputError("an answer is required")
    now = utc_now()
    request.reply = reply
    request.replied_at = now
    application.transition(ApplicationStatus.SUBMITTED, at=now)
    session.flush()
    _event(
        session, EventTag.APPLICATION_REPLIED, application, actor=APPLICANT, request_id=request.id
    )
    return application


#### The queue ####


def get_application(session: Session, application_id: int) -> Application:
    found = session.get(
        Application,
        application_id,
        options=[
            selectinload(Application.checklist),
            selectinload(Application.notes),
            selectinload(Application.information_requests),
        ],
    )
    if found is None:
        raise ApplicationNotFoundError(f"no application {application_label(application_id)}")
    return found


def queue_page(
    session: Session, *, status_filter: str, number: int, per_page: int
) -> Page[Application]:
    """One page of the queue. Open views list the oldest first (first come, first
    vetted); decided ones the newest first. Each is one indexed range scan.
    """
    query = select(Application)
    if status_filter == "open":
        query = query.where(Application.status.in_(OPEN_STATUSES))
    elif status_filter != "all":
        try:
            status = ApplicationStatus(status_filter)
        except ValueError:
            raise InvalidInputError(f"unknown queue filter {status_filter!r}") from None
        query = query.where(Application.status == status)
    if status_filter in {"approved", "declined", "all"}:
        query = query.order_by(Application.submitted_at.desc(), Application.id.desc())
    else:
        query = query.order_by(Application.submitted_at, Application.id)
    return paginate(session, query, number=number, per_page=per_page)


def status_counts(session: Session) -> dict[str, int]:
    """Applications per status, and per queue filter."""
    rows = session.execute(
        select(Application.status, func.count()).group_by(Application.status)
    ).all()
    counts = {status.value: 0 for status in ApplicationStatus}
    counts.update({status.value: count for status, count in rows})
    counts["open"] = sum(counts[status.value] for status in OPEN_STATUSES)
    counts["all"] = sum(counts[status.value] for status in ApplicationStatus)
    return counts


def application_history(session: Session, application: Application) -> Sequence[Event]:
    """The application's events, and those of the license it led to."""
    subjects = [application.label]
    if application.license_id is not None:
        subjects.append(str(application.license_id))
    return subject_history(session, subjects)


def existing_organisation_named(session: Session, application: Application) -> bool:
    """Whether approving would add a license to an organisation that already exists."""
    return get_organisation_by_name(session, application.organization_name) is not None


def missing_checklist_items(application: Application) -> list[ChecklistItem]:
    ticked = {entry.item for entry in application.checklist if entry.checked}
    return [item for item in ChecklistItem if item not in ticked]


def allowed_actions(application: Application) -> frozenset[ApplicationStatus]:
    return ALLOWED_TRANSITIONS[application.status]


#### Vetting ####


def _open_application(session: Session, application_id: int) -> Application:
    application = get_application(session, application_id)
    if application.status.is_final:
        raise InvalidTransitionError(
            f"application {application.label} is {application.status.label.lower()}; "
            "its vetting is closed"
        )
    return application


def set_checklist_item(
    session: Session,
    application_id: int,
    item: ChecklistItem,
    *,
    checked: bool,
    note: str,
    admin: Admin,
) -> ChecklistEntry:
    """Tick (or untick) one checklist item, as ``admin``, with a note."""
    application = _open_application(session, application_id)
    entry = next((entry for entry in application.checklist if entry.item is item), None)
    if entry is None:
        entry = ChecklistEntry(item=item, checked=checked, note=note, admin=admin)
        application.checklist.append(entry)
    entry.checked = checked
    entry.note = note
    entry.admin = admin
    entry.updated_at = utc_now()
    session.flush()
    _event(
        session,
        EventTag.APPLICATION_CHECKLIST_UPDATED,
        application,
        actor=admin.email,
        item=item.value,
        checked=checked,
        note=note,
    )
    return entry


def add_note(session: Session, application_id: int, body: str, *, admin: Admin) -> ApplicationNote:
    """A private note on an application (also on decided ones, for the record)."""
    application = get_application(session, application_id)
    note = ApplicationNote(body=body, admin=admin)
    application.notes.append(note)
    session.flush()
    _event(
        session, EventTag.APPLICATION_NOTE_ADDED, application, actor=admin.email, note_id=note.id
    )
    return note


def request_information(
    session: Session,
    settings: Settings,
    postbox: Postbox,
    application_id: int,
    question: str,
    *,
    admin: Admin,
) -> InformationRequest:
    """Ask the applicant a question; it is e-mailed with a status link to reply."""
    application = get_application(session, application_id)
    now = utc_now()
    application.transition(ApplicationStatus.INFORMATION_REQUESTED, at=now)
    request = InformationRequest(question=question, asked_by=admin, asked_at=now)
    application.information_requests.append(request)
    session.flush()
    _event(
        session,
        EventTag.APPLICATION_INFORMATION_REQUESTED,
        application,
        actor=admin.email,
        request_id=request.id,
    )
    _mail_applicant(
        settings,
        session,
        postbox,
        application,
        "application-information-requested",
        question=question,
    )
    return request


def defer(session: Session, application_id: int, reason: str, *, admin: Admin) -> Application:
    """Put the decision off; the reason is internal."""
    application = get_application(session, application_id)
    now = utc_now()
    application.transition(ApplicationStatus.DEFERRED, at=now)
    application.decision_reason = reason or None
    session.flush()
    _event(session, EventTag.APPLICATION_DEFERRED, application, actor=admin.email, reason=reason)
    return application


def decline(
    session: Session,
    settings: Settings,
    postbox: Postbox,
    application_id: int,
    reason: str,
    *,
    admin: Admin,
) -> Application:
    """Decline for good; the applicant is e-mailed the reason."""
    if not reason.strip():
        raise InvalidInputError("a reason is required to decline")
    application = get_application(session, application_id)
    now = utc_now()
    application.transition(ApplicationStatus.DECLINED, at=now)
    application.decided_at = now
    application.decided_by = admin.email
    application.decision_reason = reason
    session.flush()
    _event(session, EventTag.APPLICATION_DECLINED, application, actor=admin.email, reason=reason)
    _mail_applicant(settings, session, postbox, application, "application-declined", reason=reason)
    return application


def approve(
    session: Session,
    settings: Settings,
    postbox: Postbox,
    application_id: int,
    *,
    max_engines: int,
    signing_key: Ed25519PrivateKey,
    admin: Admin,
) -> Application:
    """Approve: the organisation, its license on the stable channel, and an e-mailed
    one-time download link for the contact.

    Raises:
        ChecklistIncompleteError: An item of the vetting checklist is not ticked.
        InvalidTransitionError: The application cannot be approved in its status.
    """
    application = get_application(session, application_id)
    if ApplicationStatus.APPROVED not in allowed_actions(application):
        application.transition(ApplicationStatus.APPROVED, at=utc_now())  # raises
    missing = missing_checklist_items(application)
    if missing:
        raise ChecklistIncompleteError(
            "the checklist is not complete: " + "; ".join(item.label for item in missing)
        )
    now = utc_now()
    application.transition(ApplicationStatus.APPROVED, at=now)
    application.decided_at = now
    application.decided_by = admin.email
    existed = existing_organisation_named(session, application)
    organisation = get_or_create_organisation(
        session, application.organization_name, actor=admin.email
    )
    issued = issue_license(
        session,
        organisation,
        days=settings.approved_license_days,
        channels=[Channel.STABLE.value],
        max_engines=max_engines,
        signing_key=signing_key,
        issuer=settings.portal_url,
        actor=admin.email,
    )
    application.organisation_id = organisation.id
    application.license_id = issued.license.id
    session.flush()
    _event(
        session,
        EventTag.APPLICATION_APPROVED,
        application,
        actor=admin.email,
        organisation_id=str(organisation.id),
        existing_organisation=existed,
        license_id=str(issued.license.id),
        max_engines=max_engines,
    )
    download_link = send_download_link(
        session,
        settings,
        postbox,
        issued.license,
        to=application.contact_email,
        actor=admin.email,
        template=None,
    )
    _mail_applicant(
        settings,
        session,
        postbox,
        application,
        "application-approved",
        license=issued.license,
        download_link=download_link,
        download_days=settings.download_link_days,
    )
    return application


def license_contact(session: Session, license_id: object) -> str | None:
    """The contact address of the application a license was issued for, if any."""
    return session.scalars(
        select(Application.contact_email).where(Application.license_id == license_id)
    ).first()
