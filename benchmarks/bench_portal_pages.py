"""Render time of the administrators' busiest pages with a large queue.

Seeds N applications (default 10,000, with one audit event each and a few
checklist items, notes and questions) into the database at ``--database-url``,
signs in with an authenticated test client and measures p50/p95 of

- ``GET /admin/applications`` (the queue, 50 a page; random pages, and the
  default "in the queue" view), and
- ``GET /admin/applications/{id}`` (a random application's detail page).

Target: p95 < 100 ms on PostgreSQL. The database must be empty or hold a
previous run's seed (``--reset`` drops everything first: never point it at a
database you care about). Examples::

    python benchmarks/bench_portal_pages.py  # a temporary SQLite file
    python benchmarks/bench_portal_pages.py --reset \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/vigil_bench
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _portal import benchmark_admin, measure, open_database, percentile, signed_in_client
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from portal.admin.models import Admin
from portal.applications.models import (
    Application,
    ApplicationNote,
    ApplicationStatus,
    ChecklistEntry,
    ChecklistItem,
    InformationRequest,
    UserAgeRange,
    application_label,
)
from portal.events.models import Event

TARGET_P95_MS = 100.0
BATCH = 2000
ADMIN_EMAIL = "bench@portal.example"
ADMIN_PASSWORD = "benchmark admin password"  # noqa: S105 (a throwaway database)
STATUS_MIX = (
    [ApplicationStatus.SUBMITTED] * 6
    + [ApplicationStatus.INFORMATION_REQUESTED]
    + [ApplicationStatus.DEFERRED]
    + [ApplicationStatus.APPROVED]
    + [ApplicationStatus.DECLINED]
)


def seed(session: Session, count: int, admin: Admin, rng: random.Random) -> None:
    now = datetime.now(UTC)
    start = session.scalar(select(func.count()).select_from(Application)) or 0
    for offset in range(start, count, BATCH):
        rows = []
        for _ in range(offset, min(count, offset + BATCH)):
            submitted = now - timedelta(minutes=rng.randrange(1, 365 * 24 * 60))
            status = rng.choice(STATUS_MIX)
            rows.append(
                {
                    "organization_name": f"Chat Platform {rng.randrange(10**9):09d} Ltd",
                    "website": "https://chat.example",
                    "country": "Ireland",
                    "contact_name": "Bench Contact",
                    "contact_email": f"contact{rng.randrange(10**9)}@chat.example",
                    "platform_description": "Group chat for school clubs. " * 10,
                    "offers_chat": True,
                    "user_age_range": rng.choice(list(UserAgeRange)),
                    "monthly_active_users": rng.randrange(100, 10_000_000),
                    "moderation_team_size": rng.randrange(0, 500),
                    "escalation_contact": "Safety lead, +353 1 555 0100",
                    "ncmec_esp_id": None,
                    "terms_accepted_at": submitted,
                    "status": status,
                    "submitted_at": submitted,
                    "status_changed_at": submitted + timedelta(hours=rng.randrange(0, 48)),
                }
            )
        ids = session.scalars(insert(Application).returning(Application.id), rows).all()
        session.execute(
            insert(Event),
            [
                {
                    "created_at": row["submitted_at"],
                    "actor": "applicant",
                    "tag": "application:submitted",
                    "subject_id": application_label(application_id),
                    "payload": {"status": "submitted"},
                }
                for application_id, row in zip(ids, rows, strict=True)
            ],
        )
        # Every 10th application is being vetted: checklist, a note, a question.
        vetted = ids[::10]
        session.execute(
            insert(ChecklistEntry),
            [
                {
                    "application_id": application_id,
                    "item": item,
                    "checked": True,
                    "note": "looked fine",
                    "admin_id": admin.id,
                    "updated_at": now,
                }
                for application_id in vetted
                for item in list(ChecklistItem)[:3]
            ],
        )
        session.execute(
            insert(ApplicationNote),
            [
                {"application_id": i, "admin_id": admin.id, "body": "call them", "created_at": now}
                for i in vetted
            ],
        )
        session.execute(
            insert(InformationRequest),
            [
                {
                    "application_id": i,
                    "question": "How many?",
                    "asked_by_id": admin.id,
                    "asked_at": now,
                }
                for i in vetted
            ],
        )
        session.commit()
        print(f"seeded {min(count, offset + BATCH):,} applications", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default="", help="default: a temporary SQLite file")
    parser.add_argument("--applications", "-n", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200, help="per page kind")
    parser.add_argument(
        "--reset", action="store_true", help="drop everything in the database first"
    )
    parser.add_argument("--seed", type=int, default=20261123)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as scratch:
        url = args.database_url or f"sqlite:///{scratch}/bench.db"
        engine, factory = open_database(url, reset=args.reset)
        rng = random.Random(args.seed)  # noqa: S311 (reproducible test data, not secrets)

        with factory() as session:
            admin = benchmark_admin(session)
            secret = admin.totp_secret
            seed(session, args.applications, admin, rng)
            ids = session.scalars(select(Application.id)).all()
            total = len(ids)

        client = signed_in_client(url, Path(scratch), factory, secret)

        pages_in_queue = max(1, total // 50)
        queue_paths = [
            f"/admin/applications?status={rng.choice(['submitted', 'open', 'all'])}"
            f"&page={rng.randrange(1, pages_in_queue // 2 + 2)}"
            for _ in range(args.requests)
        ]
        detail_paths = [f"/admin/applications/{rng.choice(ids)}" for _ in range(args.requests)]
        measure(client, queue_paths[:10] + detail_paths[:10])  # warm caches and pools

        print(f"{engine.dialect.name}, {total:,} applications, {args.requests} requests per page")
        worst = 0.0
        for name, paths in (("queue", queue_paths), ("detail", detail_paths)):
            timings = measure(client, paths)
            p50, p95 = percentile(timings, 0.5), percentile(timings, 0.95)
            worst = max(worst, p95)
            print(
                f"  {name:<7} p50 {p50:6.1f} ms   p95 {p95:6.1f} ms   "
                f"max {max(timings):6.1f} ms   mean {statistics.fmean(timings):6.1f} ms"
            )
        engine.dispose()
    verdict = "meets" if worst < TARGET_P95_MS else "MISSES"
    print(f"p95 target {TARGET_P95_MS:.0f} ms: {verdict}")
    return 0 if worst < TARGET_P95_MS else 1


if __name__ == "__main__":
    sys.exit(main())
