"""Re-signing the timestamp while the portal runs: when it is due, that a
failure never stops the schedule, and that the app's lifespan runs it.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from portal.repository import schedule
from portal.repository.service import open_repository
from portal.settings import Settings
from portal.web.app import create_app
from tests.portal.support import run_async

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
MARGIN = timedelta(hours=6)


def _expiries(timestamp: timedelta, snapshot: timedelta = timedelta(days=7)) -> dict:
    return {
        "timestamp": NOW + timestamp,
        "snapshot": NOW + snapshot,
        "targets": NOW + timedelta(days=90),
    }


def test_a_fresh_timestamp_is_left_alone() -> None:
    decision = schedule.refresh_due(_expiries(timedelta(hours=20)), now=NOW, margin=MARGIN)
    assert not decision.due
    assert decision.role == "timestamp"


def test_a_timestamp_expiring_within_the_margin_is_due() -> None:
    decision = schedule.refresh_due(_expiries(timedelta(hours=5)), now=NOW, margin=MARGIN)
    assert decision.due
    assert "timestamp expires" in decision.describe()


def test_an_expired_timestamp_is_due() -> None:
    assert schedule.refresh_due(_expiries(-timedelta(days=2)), now=NOW, margin=MARGIN).due


def test_a_snapshot_expiring_first_makes_it_due() -> None:
    decision = schedule.refresh_due(
        _expiries(timedelta(days=2), snapshot=timedelta(hours=1)), now=NOW, margin=MARGIN
    )
    assert (decision.due, decision.role) == (True, "snapshot")


def test_a_check_resigns_only_when_due(initialised: Settings) -> None:
    before = open_repository(initialised, signing=False).versions().timestamp
    now = datetime.now(UTC)
    fresh = schedule.RepositoryRefresher(initialised, clock=lambda: now)
    assert fresh.check_once() == []
    assert open_repository(initialised, signing=False).versions().timestamp == before
    # Nineteen hours later a one-day timestamp is within the six-hour margin.
    later = schedule.RepositoryRefresher(initialised, clock=lambda: now + timedelta(hours=19))
    assert later.check_once() == ["timestamp"]
    expiries = schedule.metadata_expiries(initialised)
    assert open_repository(initialised, signing=False).versions().timestamp == before + 1
    assert expiries["timestamp"] > now + timedelta(hours=23)


def test_a_failing_check_is_logged_and_not_raised(
    initialised: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(_settings: Settings) -> list[str]:
        raise OSError("disk full")

    refresher = schedule.RepositoryRefresher(
        initialised,
        clock=lambda: NOW,
        read_expiries=lambda _settings: _expiries(timedelta(hours=1)),
        resign=broken,
    )
    assert run_async(refresher.check_in_thread) == []
    assert "repository refresh failed" in caplog.text
    assert "disk full" in caplog.text


def test_the_schedule_goes_on_after_failures(initialised: Settings) -> None:
    outcomes = iter([OSError("first"), ValueError("second"), _expiries(timedelta(hours=1))])
    resigned: list[str] = []
    sleeps: list[float] = []

    def read_expiries(_settings: Settings) -> dict:
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def resign(_settings: Settings) -> list[str]:
        resigned.append("timestamp")
        return ["timestamp"]

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 3:
            raise asyncio.CancelledError

    refresher = schedule.RepositoryRefresher(
        initialised, clock=lambda: NOW, read_expiries=read_expiries, resign=resign
    )
    with pytest.raises(asyncio.CancelledError):
        run_async(lambda: refresher.run(sleep=sleep))
    assert resigned == ["timestamp"]
    assert sleeps == [initialised.repository_refresh_interval_seconds] * 3


def test_the_app_runs_the_schedule_while_it_serves(
    initialised: Settings,
    session_factory: sessionmaker[Session],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="portal.repository.schedule")
    app = create_app(initialised, session_factory=session_factory)
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
    assert "checking every 1:00:00" in caplog.text
    assert "repository refresh failed" not in caplog.text


def test_the_schedule_can_be_turned_off(
    initialised: Settings,
    session_factory: sessionmaker[Session],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="portal.repository.schedule")
    settings = initialised.model_copy(update={"repository_refresh_interval_seconds": 0})
    with TestClient(create_app(settings, session_factory=session_factory)):
        pass
    assert "checking every" not in caplog.text


@pytest.mark.parametrize(
    ("interval", "margin"),
    [(7200, 1), (3600, 24), (3600, 1)],
)
def test_the_margin_must_exceed_the_interval_and_not_the_expiry(interval: int, margin: int) -> None:
    with pytest.raises(ValidationError, match="REFRESH_MARGIN"):
        Settings(
            environment="development",
            repository_refresh_interval_seconds=interval,
            repository_refresh_margin_hours=margin,
        )
