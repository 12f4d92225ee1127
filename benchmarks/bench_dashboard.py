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
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pyotp
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from portal.admin.models import Admin
from portal.admin.service import create_admin
from portal.db import make_engine, upgrade_database
from portal.licenses.models import License, LicenseStatus
from portal.organisations.models import Organisation
from portal.settings import Settings
from portal.usage.models import HISTOGRAM_COLUMNS, UsageDay
from portal.usage.service import add_usage
from portal.web.app import create_app

TARGET_P95_MS = 200.0
DAYS = 365
BATCH = 5000
BINS = 20
ADMIN_EMAIL = "bench@portal.example"
ADMIN_PASSWORD = "benchmark admin password"  # noqa: S105 (a throwaway database)
ORGANISATIONS = ("Benchmark Chat Ltd", "Other Benchmark Chat Ltd")


def reset_database(url: str) -> None:
    engine = make_engine(url)
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
    elif engine.dialect.name == "sqlite" and engine.url.database:
        Path(engine.url.database).unlink(missing_ok=True)
    engine.dispose()


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


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def measure(client: TestClient, path: str, count: int) -> list[float]:
    timings = []
    for _ in range(count):
        started = time.perf_counter()
        response = client.get(path)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise SystemExit(f"GET {path} answered {response.status_code}")
        timings.append(elapsed)
    return timings


def sign_in(client: TestClient, secret: str) -> None:
    login_page = client.get("/admin/login").text
    token = login_page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    signed_in = client.post(
        "/admin/login",
        data={
            "email": ADMIN_EMAIL,
            "password": ADMIN_PASSWORD,
            # A step ahead: an earlier run may have used the current one.
            "totp_code": pyotp.TOTP(secret).at(datetime.now(UTC) + timedelta(seconds=30)),
            "csrf_token": token,
        },
    )
    if signed_in.status_code != 303:
        raise SystemExit("could not sign in (run again in 30 seconds: codes are used once)")


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
        if make_url(url).database == "test":
            raise SystemExit("refusing the test suite's database; use another one")
        if args.reset:
            reset_database(url)
        engine = make_engine(url)
        upgrade_database(engine)
        factory = sessionmaker(bind=engine, expire_on_commit=False)
        rng = random.Random(args.seed)  # noqa: S311 (reproducible test data, not secrets)

        with factory() as session:
            admin = session.scalars(select(Admin).where(Admin.email == ADMIN_EMAIL)).one_or_none()
            if admin is None:
                admin, _uri = create_admin(session, ADMIN_EMAIL, ADMIN_PASSWORD, actor="bench")
                session.commit()
            secret = admin.totp_secret
            organisations = [
                seed(session, name, engines=args.engines, bundles=args.bundles, rng=rng)
                for name in ORGANISATIONS
            ]
            rows = session.scalar(select(func.count()).select_from(UsageDay)) or 0
        if engine.dialect.name == "postgresql":
            with engine.begin() as connection:
                connection.execute(text("ANALYZE usage_days"))

        settings = Settings(
            environment="development",
            portal_home=Path(scratch) / "home",
            database_url=url,
            session_cookie_secure=False,
            login_rate_limit=1000,
        )
        client = TestClient(create_app(settings, session_factory=factory), follow_redirects=False)
        # As `vigil-portal serve` does once the app is built (portal/cli/serve.py).
        gc.collect()
        gc.freeze()
        sign_in(client, secret)
        dashboard = f"/admin/organisations/{organisations[0].id}/dashboard"
        pages = [
            *(f"{dashboard}?days={days}" for days in (30, 90, 365)),
            "/admin/organisations",
        ]
        for path in pages:  # warm caches and pools
            measure(client, path, 2)

        print(
            f"{engine.dialect.name}, {rows:,} usage rows ({args.engines} engines x {DAYS} days "
            f"x {args.bundles} bundles, 2 organisations), {args.requests} requests per page"
        )
        worst = 0.0
        for path in pages:
            timings = measure(client, path, args.requests)
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
