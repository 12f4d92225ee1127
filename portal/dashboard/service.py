"""An organisation's dashboard: what its engines scored, flagged and reviewed.

Rules:

- Everything comes from the counts engines report (no text, no user ids),
  summed in SQL. The daily series (``GROUP BY day``) and the per-bundle
  totals, verdict mix and score histograms (``GROUP BY bundle``) sum the
  organisation's ``usage_rollups``: ingestion keeps one row per day and bundle
  however many engines report, so a year is a few hundred rows. The per-engine
  table is one ``GROUP BY license, engine`` over ``usage_days``, read from its
  ``ix_usage_days_engine_counts`` index alone (in key order: no sort, no row
  lookups). The administrators' list sums the rollups too. Measured by
  ``benchmarks/bench_dashboard.py`` (a year of 100 engines).
- A period is one of ``PERIODS`` days ending today (UTC), both ends included;
  anything else asked for falls back to ``DEFAULT_PERIOD`` (a hand-edited URL
  never fails). Days without usage count as zero, so the series has no gaps.
- Precision of flags, per bundle: confirmed verdicts (``grooming`` plus
  ``imminent_threat``) over conversations reviewed; none when nothing was
  reviewed.
- The organisation's contact sees the same dashboard, read-only, through a
  multi-use magic link (``DASHBOARD_LINK_DAYS`` = 30 days): sending a new link
  withdraws the earlier ones, and the administrators can send one at any time.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Final

from sqlalchemy import case, func, select

from portal.applications.models import Application
from portal.dashboard import charts
from portal.db_base import utc_now
from portal.engines.models import Activation
from portal.events.service import record_event
from portal.events.tags import EventTag
from portal.licenses.models import License
from portal.magic_links.models import LinkPurpose
from portal.magic_links.service import create_link, resolve_link, usable_until, withdraw_links
from portal.organisations.models import Organisation
from portal.organisations.service import get_organisation
from portal.usage.models import UsageDay, UsageRollup
from portal.usage.service import COUNT_COLUMNS, SUMMED_COLUMNS
from scoring_engine.usage import HISTOGRAM_BINS

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from sqlalchemy.orm import InstrumentedAttribute, Session
    from sqlalchemy.sql.elements import ColumnElement

    from portal.mail.service import Postbox
    from portal.settings import Settings

PERIODS: Final = (30, 90, 365)
DEFAULT_PERIOD: Final = 30
DASHBOARD_LINK_DAYS: Final = 30
DASHBOARD_PATH: Final = "/organisations/dashboard/"
VERDICTS: Final = (
    ("not_grooming", "Not grooming"),
    ("grooming", "Grooming"),
    ("imminent_threat", "Imminent threat"),
)
_CATEGORY_LABELS: Final = 6


def parse_period(value: str | None) -> int:
    """The period (in days) a request asks for, or ``DEFAULT_PERIOD``."""
    try:
        days = int(value or "")
    except ValueError:
        return DEFAULT_PERIOD
    return days if days in PERIODS else DEFAULT_PERIOD


@dataclass(frozen=True)
class Period:
    days: int
    first: date
    last: date

    @classmethod
    def ending(cls, last: date, days: int) -> Period:
        return cls(days=days, first=last - timedelta(days=days - 1), last=last)

    def each_day(self) -> list[date]:
        return [self.first + timedelta(days=offset) for offset in range(self.days)]


@dataclass(frozen=True)
class Counts:
    scored: int = 0
    flagged: int = 0
    reviewed: int = 0
    not_grooming: int = 0
    grooming: int = 0
    imminent_threat: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.scored + other.scored,
            self.flagged + other.flagged,
            self.reviewed + other.reviewed,
            self.not_grooming + other.not_grooming,
            self.grooming + other.grooming,
            self.imminent_threat + other.imminent_threat,
        )

    @property
    def confirmed(self) -> int:
        """Flags a moderator confirmed: ``grooming`` plus ``imminent_threat``."""
        return self.grooming + self.imminent_threat

    @property
    def precision(self) -> float | None:
        return self.confirmed / self.reviewed if self.reviewed else None

    @property
    def flag_rate(self) -> float | None:
        return self.flagged / self.scored if self.scored else None


@dataclass(frozen=True)
class DayUsage:
    day: date
    scored: int
    flagged: int
    reviewed: int


@dataclass(frozen=True)
class BundleUsage:
    bundle: str
    counts: Counts
    histogram: tuple[int, ...]

    @property
    def histogram_total(self) -> int:
        return sum(self.histogram)


@dataclass(frozen=True)
class EngineUsage:
    engine_id: uuid.UUID
    license_id: uuid.UUID
    hostname: str | None
    scored: int
    flagged: int
    reviewed: int
    first_day: date
    last_day: date


@dataclass(frozen=True)
class HistogramChart:
    bundle: str
    chart: charts.BarChart


@dataclass(frozen=True)
class DashboardCharts:
    scored: charts.BarChart
    flags: charts.LineChart
    verdicts: charts.StackedChart
    histograms: tuple[HistogramChart, ...]


@dataclass(frozen=True)
class Dashboard:
    organisation: Organisation
    licenses: Sequence[License]
    period: Period
    days: list[DayUsage]
    bundles: list[BundleUsage]
    engines: list[EngineUsage]
    totals: Counts
    charts: DashboardCharts

    @property
    def has_usage(self) -> bool:
        return self.totals.scored > 0 or self.totals.reviewed > 0


#### Aggregation ####


def _in_period(organisation_id: uuid.UUID, period: Period) -> list[ColumnElement[bool]]:
    return [
        UsageRollup.organisation_id == organisation_id,
        UsageRollup.day >= period.first,
        UsageRollup.day <= period.last,
    ]


def _daily(session: Session, organisation_id: uuid.UUID, period: Period) -> list[DayUsage]:
    """Every day of the period (zero where nothing was reported), summed over bundles."""
    per_day = {
        day: DayUsage(day, int(scored), int(flagged), int(reviewed))
        for day, scored, flagged, reviewed in session.execute(
            select(
                UsageRollup.day,
                func.sum(UsageRollup.scored),
                func.sum(UsageRollup.flagged),
                func.sum(UsageRollup.reviewed),
            )
            .where(*_in_period(organisation_id, period))
            .group_by(UsageRollup.day)
        )
    }
    return [per_day.get(day) or DayUsage(day, 0, 0, 0) for day in period.each_day()]


def _by_bundle(session: Session, organisation_id: uuid.UUID, period: Period) -> list[BundleUsage]:
    """The period's counts and score histogram of each bundle, by name."""
    rows = session.execute(
        select(
            UsageRollup.bundle,
            *[func.sum(getattr(UsageRollup, name)) for name in SUMMED_COLUMNS],
        )
        .where(*_in_period(organisation_id, period))
        .group_by(UsageRollup.bundle)
        .order_by(UsageRollup.bundle)
    )
    return [
        BundleUsage(
            bundle,
            Counts(**{name: int(value) for name, value in zip(COUNT_COLUMNS, sums, strict=False)}),
            tuple(int(count) for count in sums[len(COUNT_COLUMNS) :]),
        )
        for bundle, *sums in rows
    ]


def _by_engine(
    session: Session, license_ids: Sequence[uuid.UUID], period: Period
) -> list[EngineUsage]:
    # By license rather than organisation: the index (license, engine, day,
    # scored, flagged, reviewed) then delivers the rows already grouped, with no
    # sort and no lookup of the table's rows.
    if not license_ids:
        return []
    rows = session.execute(
        select(
            UsageDay.license_id,
            UsageDay.engine_id,
            func.sum(UsageDay.scored),
            func.sum(UsageDay.flagged),
            func.sum(UsageDay.reviewed),
            func.min(UsageDay.day),
            func.max(UsageDay.day),
        )
        .where(
            UsageDay.license_id.in_(license_ids),
            UsageDay.day >= period.first,
            UsageDay.day <= period.last,
        )
        .group_by(UsageDay.license_id, UsageDay.engine_id)
    ).all()
    hostnames = _hostnames(session, {license_id for license_id, *_ in rows})
    engines = [
        EngineUsage(
            engine_id=engine_id,
            license_id=license_id,
            hostname=hostnames.get((license_id, engine_id)),
            scored=int(scored or 0),
            flagged=int(flagged or 0),
            reviewed=int(reviewed or 0),
            first_day=first_day,
            last_day=last_day,
        )
        for license_id, engine_id, scored, flagged, reviewed, first_day, last_day in rows
    ]
    return sorted(engines, key=lambda engine: (-engine.scored, str(engine.engine_id)))


def _hostnames(
    session: Session, license_ids: set[uuid.UUID]
) -> dict[tuple[uuid.UUID, uuid.UUID], str]:
    """The host name each engine last activated with, by (license, engine)."""
    if not license_ids:
        return {}
    rows = session.execute(
        select(Activation.license_id, Activation.engine_id, Activation.hostname)
        .where(Activation.license_id.in_(license_ids), Activation.hostname.is_not(None))
        .order_by(Activation.activated_at)
    ).all()
    return {
        (license_id, engine_id): hostname for license_id, engine_id, hostname in rows if hostname
    }


def organisation_licenses(session: Session, organisation_id: uuid.UUID) -> Sequence[License]:
    """The organisation's licenses, newest first."""
    return session.scalars(
        select(License)
        .where(License.organisation_id == organisation_id)
        .order_by(License.issued_at.desc(), License.id)
    ).all()


def organisation_dashboard(
    session: Session, organisation_id: uuid.UUID, *, days: int, today: date | None = None
) -> Dashboard:
    """The organisation's usage over the ``days`` ending ``today`` (UTC).

    Raises:
        OrganisationNotFoundError: No organisation has this id.
    """
    organisation = get_organisation(session, organisation_id)
    period = Period.ending(today or utc_now().date(), days if days in PERIODS else DEFAULT_PERIOD)
    series = _daily(session, organisation.id, period)
    bundles = _by_bundle(session, organisation.id, period)
    totals = sum((bundle.counts for bundle in bundles), Counts())
    licenses = organisation_licenses(session, organisation.id)
    return Dashboard(
        organisation=organisation,
        licenses=licenses,
        period=period,
        days=series,
        bundles=bundles,
        engines=_by_engine(session, [license_.id for license_ in licenses], period),
        totals=totals,
        charts=_charts(series, bundles),
    )


#### Charts ####


def _day_ticks(days: Sequence[date]) -> list[tuple[float, str]]:
    every = max(1, math.ceil(len(days) / _CATEGORY_LABELS))
    return [
        (charts.band_centre(index, len(days)), day.strftime("%d %b"))
        for index, day in enumerate(days)
        if index % every == 0
    ]


def bin_label(index: int) -> str:
    """The score range of histogram bin ``index``: ``0.80 to 0.85``."""
    return f"{index / HISTOGRAM_BINS:.2f} to {(index + 1) / HISTOGRAM_BINS:.2f}"


def _charts(series: Sequence[DayUsage], bundles: Sequence[BundleUsage]) -> DashboardCharts:
    labels = [usage.day.isoformat() for usage in series]
    ticks = _day_ticks([usage.day for usage in series])
    edges = [(fraction, f"{fraction:g}") for fraction in (0.0, 0.25, 0.5, 0.75, 1.0)]
    bins = [bin_label(index) for index in range(HISTOGRAM_BINS)]
    return DashboardCharts(
        scored=charts.bar_chart(labels, [usage.scored for usage in series], category_ticks=ticks),
        flags=charts.line_chart(
            labels,
            [
                ("flagged", "Flagged", [usage.flagged for usage in series]),
                ("reviewed", "Reviewed", [usage.reviewed for usage in series]),
            ],
            category_ticks=ticks,
        ),
        verdicts=charts.stacked_bars(
            [
                (
                    bundle.bundle,
                    [(key, name, getattr(bundle.counts, key)) for key, name in VERDICTS],
                )
                for bundle in bundles
            ]
        ),
        histograms=tuple(
            HistogramChart(
                bundle.bundle,
                charts.bar_chart(bins, list(bundle.histogram), category_ticks=edges),
            )
            for bundle in bundles
        ),
    )


#### The administrators' list ####


@dataclass(frozen=True)
class OrganisationOverview:
    organisation: Organisation
    newest_license: License | None
    license_count: int
    recent: Counts
    last_report: date | None


def organisation_overviews(
    session: Session, *, recent_days: int = DEFAULT_PERIOD, today: date | None = None
) -> list[OrganisationOverview]:
    """Every organisation by name, with its newest license, its usage over the
    last ``recent_days`` and the last day it reported usage for.
    """
    first = (today or utc_now().date()) - timedelta(days=recent_days - 1)

    def recent(column: InstrumentedAttribute[int]) -> ColumnElement[int]:
        return func.sum(case((UsageRollup.day >= first, column), else_=0))

    usage = {
        organisation_id: (Counts(int(s or 0), int(f or 0), int(r or 0)), last)
        for organisation_id, s, f, r, last in session.execute(
            select(
                UsageRollup.organisation_id,
                recent(UsageRollup.scored),
                recent(UsageRollup.flagged),
                recent(UsageRollup.reviewed),
                func.max(UsageRollup.day),
            ).group_by(UsageRollup.organisation_id)
        ).all()
    }
    licenses: dict[uuid.UUID, list[License]] = {}
    for license_ in session.scalars(
        select(License).order_by(License.issued_at.desc(), License.id)
    ).all():
        licenses.setdefault(license_.organisation_id, []).append(license_)
    overviews = []
    for organisation in session.scalars(select(Organisation).order_by(Organisation.name)).all():
        own = licenses.get(organisation.id, [])
        counts, last = usage.get(organisation.id, (Counts(), None))
        overviews.append(
            OrganisationOverview(
                organisation=organisation,
                newest_license=own[0] if own else None,
                license_count=len(own),
                recent=counts,
                last_report=last,
            )
        )
    return overviews


#### The contact's link ####


def organisation_contact(session: Session, organisation_id: uuid.UUID) -> str | None:
    """The contact address of the newest application that got the organisation a license."""
    return session.scalars(
        select(Application.contact_email)
        .join(License, Application.license_id == License.id)
        .where(License.organisation_id == organisation_id)
        .order_by(Application.id.desc())
        .limit(1)
    ).first()


def dashboard_link_url(settings: Settings, token: str) -> str:
    return f"{settings.portal_url}{DASHBOARD_PATH}{token}"


def send_dashboard_link(
    session: Session,
    settings: Settings,
    postbox: Postbox,
    organisation_id: uuid.UUID,
    *,
    to: str,
    actor: str,
) -> str:
    """E-mail ``to`` a new read-only dashboard link of the organisation (multi-use,
    ``DASHBOARD_LINK_DAYS`` days); earlier dashboard links stop working.

    Raises:
        OrganisationNotFoundError: No organisation has this id.
    """
    organisation = get_organisation(session, organisation_id)
    withdraw_links(session, LinkPurpose.ORGANISATION_DASHBOARD, str(organisation.id))
    token = create_link(
        session,
        LinkPurpose.ORGANISATION_DASHBOARD,
        str(organisation.id),
        lifetime=timedelta(days=DASHBOARD_LINK_DAYS),
        one_time=False,
    )
    link = dashboard_link_url(settings, token)
    postbox.queue(
        "organisation-dashboard",
        to=to,
        context={
            "organisation": organisation,
            "dashboard_link": link,
            "link_days": DASHBOARD_LINK_DAYS,
        },
    )
    record_event(
        session,
        EventTag.ORGANISATION_DASHBOARD_LINK_SENT,
        actor=actor,
        subject_id=str(organisation.id),
        payload={"to": to, "expires_in_days": DASHBOARD_LINK_DAYS},
    )
    return link


def dashboard_link_usable_until(session: Session, organisation_id: uuid.UUID) -> datetime | None:
    """When the organisation's dashboard link expires, if one works now."""
    return usable_until(session, LinkPurpose.ORGANISATION_DASHBOARD, str(organisation_id))


@dataclass(frozen=True)
class LinkedDashboard:
    dashboard: Dashboard
    link_expires_at: datetime


def dashboard_for_link(
    session: Session, token: str, *, days: int, today: date | None = None
) -> LinkedDashboard:
    """The dashboard a contact's link opens (the link stays usable until it expires).

    Raises:
        LinkUnusableError: The link is unknown, malformed, expired or withdrawn.
    """
    link = resolve_link(session, token, LinkPurpose.ORGANISATION_DASHBOARD)
    dashboard = organisation_dashboard(session, uuid.UUID(link.subject_id), days=days, today=today)
    return LinkedDashboard(dashboard, link.expires_at)
