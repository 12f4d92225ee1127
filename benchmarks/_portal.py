"""What the portal page benchmarks share: a throwaway database with an administrator,
an app signed in as that administrator, and the timing of GET requests."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pyotp
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker

from portal.admin.models import Admin
from portal.admin.service import create_admin
from portal.db import make_engine, upgrade_database
from portal.settings import Settings
from portal.web.app import create_app

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session

ADMIN_EMAIL = "bench@portal.example"
ADMIN_PASSWORD = "benchmark admin password"  # noqa: S105 (a throwaway database)


def reset_database(url: str) -> None:
    engine = make_engine(url)
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
    elif engine.dialect.name == "sqlite" and engine.url.database:
        Path(engine.url.database).unlink(missing_ok=True)
    engine.dispose()


def open_database(url: str, *, reset: bool) -> tuple[Engine, sessionmaker[Session]]:
    """The benchmark's database at the schema's head (never the test suite's)."""
    if make_url(url).database == "test":
        raise SystemExit("refusing the test suite's database; use another one")
    if reset:
        reset_database(url)
    engine = make_engine(url)
    upgrade_database(engine)
    return engine, sessionmaker(bind=engine, expire_on_commit=False)


def benchmark_admin(session: Session) -> Admin:
    """The benchmark's administrator, created once."""
    admin = session.scalars(select(Admin).where(Admin.email == ADMIN_EMAIL)).one_or_none()
    if admin is None:
        admin, _uri = create_admin(session, ADMIN_EMAIL, ADMIN_PASSWORD, actor="bench")
        session.commit()
    return admin


def signed_in_client(
    url: str, scratch: Path, factory: sessionmaker[Session], secret: str
) -> TestClient:
    settings = Settings(
        environment="development",
        portal_home=scratch / "home",
        database_url=url,
        session_cookie_secure=False,
        login_rate_limit=1000,
    )
    client = TestClient(create_app(settings, session_factory=factory), follow_redirects=False)
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
    return client


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def measure(client: TestClient, paths: list[str]) -> list[float]:
    """Milliseconds per GET, in order; any answer but 200 stops the benchmark."""
    timings = []
    for path in paths:
        started = time.perf_counter()
        response = client.get(path)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise SystemExit(f"GET {path} answered {response.status_code}")
        timings.append(elapsed)
    return timings
