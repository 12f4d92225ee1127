"""Re-signing the timestamp on a schedule, inside ``vigil-portal serve``.

Engines refuse metadata past its expiry, and the timestamp expires soonest
(``VIGIL_TIMESTAMP_EXPIRY_DAYS``, one day by default). ``vigil-portal repo
refresh`` re-signs it from cron; a running portal also does it itself:

- ``RepositoryRefresher.run`` is an asyncio task the app's lifespan starts: it
  checks at once, then every ``VIGIL_REPOSITORY_REFRESH_INTERVAL_SECONDS``.
- A check (``check_once``) reads the expiry of the current timestamp,
  snapshot and targets and re-signs (``portal.repository.service.
  refresh_timestamp``, which also re-signs snapshot and targets when they are
  close to expiry) only when one of them expires within
  ``VIGIL_REPOSITORY_REFRESH_MARGIN_HOURS`` (``refresh_due``). A fresh
  repository is left alone, so several portal processes and a cron job do not
  re-sign in turn; writers are serialized by the repository's file lock.
- What a check did is logged; a failing check is logged and retried at the
  next interval, never ending the task or the server. Signing runs in a
  worker thread, so requests are served meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tuf.api.metadata import Metadata

from portal.db_base import utc_now
from portal.repository import service

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
    from datetime import datetime, timedelta

    from portal.settings import Settings

logger = logging.getLogger(__name__)

CHECKED_ROLES = ("timestamp", "snapshot", "targets")


@dataclass(frozen=True)
class RefreshDecision:
    due: bool
    role: str
    expires: datetime

    def describe(self) -> str:
        state = "due" if self.due else "not due"
        return f"{state}: {self.role} expires {self.expires.isoformat(timespec='seconds')}"


def refresh_due(
    expiries: Mapping[str, datetime], *, now: datetime, margin: timedelta
) -> RefreshDecision:
    """Whether to re-sign now: when the role expiring first does so within ``margin``."""
    role = min(expiries, key=lambda name: expiries[name])
    return RefreshDecision(due=expiries[role] - now <= margin, role=role, expires=expiries[role])


def metadata_expiries(settings: Settings) -> dict[str, datetime]:
    """When the current timestamp, snapshot and targets metadata expire."""
    repository = service.open_repository(settings, signing=False)
    expiries = {}
    for role in CHECKED_ROLES:
        signed = Metadata.from_bytes(repository.metadata_file(role).read_bytes()).signed
        expiries[role] = signed.expires
    return expiries


class RepositoryRefresher:
    """Keeps the repository's timestamp fresh while the portal runs."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = utc_now,
        read_expiries: Callable[[Settings], Mapping[str, datetime]] = metadata_expiries,
        resign: Callable[[Settings], list[str]] = service.refresh_timestamp,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._read_expiries = read_expiries
        self._resign = resign

    def check_once(self) -> list[str]:
        """Re-sign if due; return the roles re-signed (none if it was not due).

        Raises whatever reading or signing raises; ``run`` logs it.
        """
        decision = refresh_due(
            self._read_expiries(self.settings),
            now=self._clock(),
            margin=self.settings.repository_refresh_margin,
        )
        if not decision.due:
            logger.debug("repository refresh %s", decision.describe())
            return []
        resigned = self._resign(self.settings)
        logger.info(
            "repository refresh: re-signed %s (%s)", ", ".join(resigned), decision.describe()
        )
        return resigned

    async def check_in_thread(self) -> list[str]:
        """``check_once`` in a worker thread; failures are logged, never raised."""
        try:
            return await asyncio.to_thread(self.check_once)
        except Exception:
            logger.exception(
                "repository refresh failed; retrying in %s",
                self.settings.repository_refresh_interval,
            )
            return []

    async def run(self, *, sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> None:
        """Check now and then every interval, until cancelled."""
        interval = self.settings.repository_refresh_interval.total_seconds()
        logger.info(
            "repository refresh: checking every %s, re-signing within %s of expiry",
            self.settings.repository_refresh_interval,
            self.settings.repository_refresh_margin,
        )
        while True:
            await self.check_in_thread()
            await sleep(interval)


@contextlib.asynccontextmanager
async def refreshing(settings: Settings) -> AsyncIterator[asyncio.Task[None] | None]:
    """Run a ``RepositoryRefresher`` for the duration of the block (none if the
    interval is 0); the task is cancelled and awaited on the way out.
    """
    if not settings.repository_refresh_interval_seconds:
        yield None
        return
    task = asyncio.create_task(RepositoryRefresher(settings).run(), name="repository-refresh")
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
