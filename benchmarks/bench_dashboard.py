"""Render time of an organisation's dashboard with a year of usage.

Seeds one organisation whose ``--engines`` engines (default 100) each reported
every day of the last 365 on ``--bundles`` bundles (default 2): 36,500 usage
rows per bundle, 73,000 by default, each with a 20-bin score histogram, plus a
second organisation with as much usage that must not be counted (written as
ingestion writes them: ``usage_days`` and the ``usage_rollups``). Then signs
in with an authenticated test client and measures median and p95 of

- ``GET /admin/organisations/{id}/dashboard?days=30|90|365`` (the whole page:
  aggregation, charts and template), and
- ``GET /admin/organisations`` (the list, which sums every organisation's usage).

Target: p95 < 200 ms for every page. The database must be empty or hold this
benchmark's previous seed (``--reset`` drops everything first: never point it
at a database you care about). Examples::

    python benchmarks/bench_dashboard.py  # a temporary SQLite file
    python benchmarks/bench_dashboard.py --reset \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/vigil_bench
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _portal import benchmark_admin, measure, open_database, percentile, signed_in_client
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from portal.licenses.models import License, LicenseStatus
from portal.organisations.models import Organisation
from portal.usage.models import HISTOGRAM_COLUMNS, UsageDay
from portal.usage.service import add_usage

TARGET_P95_MS = 200.0
DAYS = 365
BATCH = 5000
BINS = 20
ADMIN_EMAIL = "bench@portal.example"
ADMIN_PASSWORD = "benchmark admin password"  # noqa: S105 (a throwaway database)
ORGANISATIONS = ("Benchmark Chat Ltd", "Other Benchmark Chat Ltd")


def _organisation_with_license(session: Session, name: str) -> tuple[Organisation, License]:
    organisation = session.scalars(
        select(Organisation).where(Organisation.name == name)
    ).one_or_none()
    if organisation is None:
        organisation = Organisation(name=name)
        session.add(organisation)
        session.flush()
        now = datetime.now(UTC)
        session.add(
            License(
                organisation_id=organisation.id,
                channels=["stable"],
                max_engines=1000,
                features=[],
                issued_at=now - timedelta(days=DAYS + 1),
                not_before=now - timedelta(days=DAYS + 1),
                expires_at=now + timedelta(days=365),
                status=LicenseStatus.ACTIVE,
                status_changed_at=now,
                key_id="bench",
            )
        )
        session.commit()
    license_ = session.scalars(
        select(License).where(License.organisation_id == organisation.id)
    ).one()
    return organisation, license_


def seed(
    session: Session, name: str, *, engines: int, bundles: int, rng: random.Random
) -> Organisation:
    """The organisation ``name`` with a year of daily usage of every engine and bundle."""
    organisation, license_ = _organisation_with_license(session, name)
    existing = session.scalar(
        select(func.count())
        .select_from(UsageDay)
        .where(UsageDay.organisation_id == organisation.id)
    )
    if existing:
        return organisation
    today = datetime.now(UTC).date()
    bundle_names = [f"reference-2026.{month + 1:02d}.0" for month in range(bundles)]
    now = datetime.now(UTC)
    engine_ids = [uuid.uuid4() for _ in range(engines)]
    rows = []
    # Day by day, oldest first, as engines report: rows of one engine are spread
    # over the table, not stored together.
    for offset in reversed(range(DAYS)):
        for engine_id in engine_ids:
            for bundle in bundle_names:
                scored = rng.randrange(50, 2000)
                flagged = rng.randrange(0, max(1, scored // 50))
                reviewed = rng.randrange(0, flagged + 1)
                grooming = rng.randrange(0, reviewed + 1)
                imminent = rng.randrange(0, reviewed - grooming + 1)
                histogram = [0] * BINS
                for _ in range(8):
                    histogram[rng.randrange(BINS)] += scored // 8
                histogram[0] += scored - sum(histogram)
                rows.append(
                    {
                        "license_id": license_.id,
                        "engine_id": engine_id,
                        "day": today - timedelta(days=offset),
                        "bundle": bundle,
                        "organisation_id": organisation.id,
                        "scored": scored,
                        "flagged": flagged,
                        "reviewed": reviewed,
                        "not_grooming": reviewed - grooming - imminent,
                        "grooming": grooming,
                        "imminent_threat": imminent,
                        **dict(zip(HISTOGRAM_COLUMNS, histogram, strict=True)),
                        "updated_at": now,
                    }
                )
                if len(rows) >= BATCH:
                    add_usage(session, rows)
                    rows = []
    if rows:
        add_usage(session, rows)
    session.commit()
    print(f"seeded {engines * DAYS * bundles:,} usage rows of {name}", file=sys.stderr)
    return organisation


def measure_page(client: TestClient, path: str, count: int) -> list[float]:
    return measure(client, [path] * count)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default="", help="default: a temporary SQLite file")
    parser.add_argument("--engines", type=int, default=100)
    parser.add_argument("--bundles", type=int, default=2, help="bundles each engine ran daily")
    parser.add_argument("--requests", type=int, default=30, help="per page")
    parser.add_argument(
        "--reset", action="store_true", help="drop everything in the database first"
    )
    parser.add_argument("--seed", type=int, default=20261202)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as scratch:
        url = args.database_url or f"sqlite:///{scratch}/bench.db"
        engine, factory = open_database(url, reset=args.reset)
        rng = random.Random(args.seed)  # noqa: S311 (reproducible test data, not secrets)

        with factory() as session:
            admin = benchmark_admin(session)
            secret = admin.totp_secret
            organisations = [
                seed(session, name, engines=args.engines, bundles=args.bundles, rng=rng)
                for name in ORGANISATIONS
            ]
            rows = session.scalar(select(func.count()).select_from(UsageDay)) or 0
        if engine.dialect.name == "postgresql":
            with engine.begin() as connection:
                connection.execute(text("ANALYZE usage_days"))

        client = signed_in_client(url, Path(scratch), factory, secret)
        # As `vigil-portal serve` does once the app is built (portal/cli/serve.py).
        gc.collect()
        gc.freeze()
        dashboard = f"/admin/organisations/{organisations[0].id}/dashboard"
        pages = [
            *(f"{dashboard}?days={days}" for days in (30, 90, 365)),
            "/admin/organisations",
        ]
        for path in pages:  # warm caches and pools
            measure_page(client, path, 2)

        print(
            f"{engine.dialect.name}, {rows:,} usage rows ({args.engines} engines x {DAYS} days "
            f"x {args.bundles} bundles, 2 organisations), {args.requests} requests per page"
        )
        worst = 0.0
        for path in pages:
            timings = measure_page(client, path, args.requests)
            p50, p95 = statistics.median(timings), percentile(timings, 0.95)
            worst = max(worst, p95)
            name = path.replace(str(organisations[0].id), "{id}")
            print(
                f"  {name:<48} median {p50:6.1f} ms   p95 {p95:6.1f} ms   "
                f"max {max(timings):6.1f} ms"
            )
        engine.dispose()
    verdict = "meets" if worst < TARGET_P95_MS else "MISSES"
    print(f"p95 target {TARGET_P95_MS:.0f} ms: {verdict}")
    return 0 if worst < TARGET_P95_MS else 1


if __name__ == "__main__":
    sys.exit(main())
