"""The dashboard's numbers: sums per day, bundle and engine over the chosen period,
histograms summed bin by bin, precision of flags, and the contact's link.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from portal.dashboard import service
from portal.engines.models import Activation
from portal.errors import ConflictError, LinkUnusableError
from portal.events.service import list_events
from portal.events.tags import EventTag
from portal.magic_links.models import LinkPurpose
from portal.magic_links.service import resolve_link
from portal.organisations.service import OrganisationNotFoundError, set_text_sharing
from tests.portal.dashboard.conftest import histogram
from tests.portal.support import ACTOR, savepoint

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.orm import Session

    from portal.licenses.models import License
    from portal.mail.service import Postbox
    from portal.settings import Settings
    from portal.usage.models import UsageDay

TODAY = date(2026, 12, 2)
OLD, NEW = "reference-2026.11.0", "reference-2026.12.0"


@dataclass(frozen=True)
class Reported:
    license: License
    first: uuid.UUID
    second: uuid.UUID


@pytest.fixture
def usage(make_license: Callable[..., License], add_usage: Callable[..., UsageDay]) -> Reported:
    """Two engines of one organisation on two bundles, plus rows that must not count."""
    license_ = make_license("Counted Chat Ltd")
    first, second = uuid.uuid4(), uuid.uuid4()
    add_usage(
        license_,
        TODAY,
        engine_id=first,
        bundle=OLD,
        scored=100,
        flagged=4,
        reviewed=4,
        not_grooming=1,
        grooming=2,
        imminent_threat=1,
        score_histogram=histogram(b0=96, b19=4),
    )
    add_usage(
        license_,
        TODAY,
        engine_id=second,
        bundle=NEW,
        scored=10,
        flagged=1,
        reviewed=1,
        grooming=1,
        score_histogram=histogram(b0=9, b18=1),
    )
    add_usage(
        license_,
        TODAY - timedelta(days=2),
        engine_id=first,
        bundle=OLD,
        scored=50,
        flagged=2,
        reviewed=2,
        not_grooming=2,
        score_histogram=histogram(b0=48, b17=2),
    )
    # The first day of a 30-day period counts; the day before it does not.
    add_usage(
        license_,
        TODAY - timedelta(days=29),
        engine_id=second,
        bundle=NEW,
        scored=7,
        score_histogram=histogram(b1=7),
    )
    add_usage(
        license_,
        TODAY - timedelta(days=30),
        engine_id=second,
        bundle=NEW,
        scored=1000,
        flagged=1000,
        score_histogram=histogram(b19=1000),
    )
    # Another organisation's usage never shows.
    other = make_license("Other Chat Ltd")
    add_usage(other, TODAY, bundle=OLD, scored=999, flagged=999, score_histogram=histogram(b5=999))
    return Reported(license_, first, second)


def test_the_daily_series_covers_every_day_of_the_period(session: Session, usage: Reported) -> None:
    license_ = usage.license
    dashboard = service.organisation_dashboard(
        session,
        license_.organisation_id,
        days=30,
        today=TODAY,
    )
    assert dashboard.period.first == TODAY - timedelta(days=29)
    assert [day.day for day in dashboard.days] == dashboard.period.each_day()
    assert len(dashboard.days) == 30
    by_day = {day.day: (day.scored, day.flagged, day.reviewed) for day in dashboard.days}
    assert by_day[TODAY] == (110, 5, 5)
    assert by_day[TODAY - timedelta(days=2)] == (50, 2, 2)
    assert by_day[TODAY - timedelta(days=29)] == (7, 0, 0)
    assert by_day[TODAY - timedelta(days=1)] == (0, 0, 0)
    assert dashboard.totals.scored == 167
    assert dashboard.totals.flagged == 7


def test_bundles_have_their_verdicts_precision_and_summed_histogram(
    session: Session, usage: Reported
) -> None:
    license_ = usage.license
    dashboard = service.organisation_dashboard(
        session,
        license_.organisation_id,
        days=30,
        today=TODAY,
    )
    old, new = dashboard.bundles
    assert (old.bundle, new.bundle) == (OLD, NEW)
    assert (old.counts.reviewed, old.counts.not_grooming, old.counts.grooming) == (6, 3, 2)
    assert old.counts.imminent_threat == 1
    assert old.counts.precision == pytest.approx(3 / 6)
    assert new.counts.precision == 1.0
    assert old.histogram == tuple(histogram(b0=144, b17=2, b19=4))
    assert new.histogram == tuple(histogram(b0=9, b1=7, b18=1))
    assert dashboard.totals.precision == pytest.approx(4 / 7)
    # The charts draw the same numbers.
    assert [bar.value for bar in dashboard.charts.scored.bars][-1] == 110
    assert [bar.value for bar in dashboard.charts.histograms[0].chart.bars] == list(old.histogram)
    grooming = [s for s in dashboard.charts.verdicts.rows[0].segments if s.key == "grooming"]
    assert grooming[0].value == 2


def test_engines_have_their_own_totals_and_host_names(session: Session, usage: Reported) -> None:
    license_ = usage.license
    session.add(
        Activation(
            license_id=license_.id,
            engine_id=usage.first,
            hostname="moderation-1.chat.example",
            engine_version="0.1.0",
            lease_expires_at=datetime.now(UTC) + timedelta(days=1),
        )
    )
    session.flush()
    dashboard = service.organisation_dashboard(
        session,
        license_.organisation_id,
        days=30,
        today=TODAY,
    )
    first, second = dashboard.engines
    assert (first.engine_id, first.scored, first.flagged, first.reviewed) == (
        usage.first,
        150,
        6,
        6,
    )
    assert first.hostname == "moderation-1.chat.example"
    assert (first.first_day, first.last_day) == (TODAY - timedelta(days=2), TODAY)
    assert (second.engine_id, second.scored, second.hostname) == (usage.second, 17, None)


def test_a_longer_period_counts_older_days(session: Session, usage: Reported) -> None:
    license_ = usage.license
    dashboard = service.organisation_dashboard(
        session,
        license_.organisation_id,
        days=90,
        today=TODAY,
    )
    assert len(dashboard.days) == 90
    assert dashboard.totals.scored == 1167


def test_an_organisation_without_usage_has_an_empty_dashboard(
    session: Session, make_license: Callable[..., License]
) -> None:
    license_ = make_license("Quiet Chat Ltd")
    dashboard = service.organisation_dashboard(session, license_.organisation_id, days=365)
    assert len(dashboard.days) == 365
    assert not dashboard.has_usage
    assert dashboard.bundles == []
    assert dashboard.engines == []
    assert dashboard.totals.precision is None


@pytest.mark.parametrize(
    ("asked", "period"), [("30", 30), ("90", 90), ("365", 365), ("7", 30), ("", 30), ("x", 30)]
)
def test_periods_other_than_the_offered_ones_fall_back_to_30_days(asked: str, period: int) -> None:
    assert service.parse_period(asked) == period


def test_the_overview_lists_every_organisation_with_its_recent_usage(
    session: Session, usage: Reported, make_license: Callable[..., License]
) -> None:
    make_license("Quiet Chat Ltd")
    overviews = {
        o.organisation.name: o for o in service.organisation_overviews(session, today=TODAY)
    }
    counted = overviews["Counted Chat Ltd"]
    assert (counted.recent.scored, counted.recent.flagged) == (167, 7)
    assert counted.last_report == TODAY
    assert counted.newest_license is not None
    assert counted.license_count == 1
    assert overviews["Quiet Chat Ltd"].last_report is None
    assert overviews["Quiet Chat Ltd"].recent.scored == 0


def test_text_sharing_changes_are_audited_and_a_repeat_is_refused(
    session: Session, make_license: Callable[..., License]
) -> None:
    organisation_id = make_license().organisation_id
    organisation = set_text_sharing(session, organisation_id, enabled=True, actor=ACTOR)
    assert organisation.text_sharing_enabled
    with savepoint(session), pytest.raises(ConflictError, match="already enabled"):
        set_text_sharing(session, organisation_id, enabled=True, actor=ACTOR)
    set_text_sharing(session, organisation_id, enabled=False, actor=ACTOR)
    tags = [event.tag for event in list_events(session, subject_id=str(organisation_id))]
    assert tags[:2] == [
        EventTag.ORGANISATION_TEXT_SHARING_DISABLED,
        EventTag.ORGANISATION_TEXT_SHARING_ENABLED,
    ]
    with pytest.raises(OrganisationNotFoundError):
        set_text_sharing(session, uuid.uuid4(), enabled=True, actor=ACTOR)


def _postbox(settings: Settings) -> Postbox:
    from portal.mail.service import Postbox  # noqa: PLC0415

    return Postbox.for_settings(settings)


def test_a_dashboard_link_is_mailed_multi_use_and_replaces_earlier_links(
    session: Session, initialised: Settings, make_license: Callable[..., License]
) -> None:
    organisation_id = make_license().organisation_id
    postbox = _postbox(initialised)
    first = service.send_dashboard_link(
        session, initialised, postbox, organisation_id, to="ada@chat.example", actor=ACTOR
    )
    second = service.send_dashboard_link(
        session, initialised, postbox, organisation_id, to="ada@chat.example", actor=ACTOR
    )
    assert [message["To"] for message in postbox.queued] == ["ada@chat.example"] * 2
    assert second in postbox.queued[1].get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    token = second.rpartition("/")[2]
    for _ in range(3):  # multi-use: opening it does not use it up
        linked = service.dashboard_for_link(session, token, days=30)
        assert linked.dashboard.organisation.id == organisation_id
    link = resolve_link(session, token, LinkPurpose.ORGANISATION_DASHBOARD)
    assert link.expires_at - link.created_at == timedelta(days=service.DASHBOARD_LINK_DAYS)
    with pytest.raises(LinkUnusableError):
        service.dashboard_for_link(session, first.rpartition("/")[2], days=30)
    events = list_events(session, tag=EventTag.ORGANISATION_DASHBOARD_LINK_SENT)
    assert events[0].subject_id == str(organisation_id)
    assert events[0].payload == {"to": "ada@chat.example", "expires_in_days": 30}


def test_an_expired_dashboard_link_is_refused(
    session: Session, initialised: Settings, make_license: Callable[..., License]
) -> None:
    organisation_id = make_license().organisation_id
    link = service.send_dashboard_link(
        session, initialised, _postbox(initialised), organisation_id, to="a@b.example", actor=ACTOR
    )
    token = link.rpartition("/")[2]
    stored = resolve_link(session, token, LinkPurpose.ORGANISATION_DASHBOARD)
    stored.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    session.flush()
    with pytest.raises(LinkUnusableError):
        service.dashboard_for_link(session, token, days=30)
