"""Fixtures for the browser tests: the portal served for real, driven in Chromium.

- ``live_portal`` (once per run): a temporary ``VIGIL_PORTAL_HOME`` initialised as
  ``vigil-portal init`` does (Alembic migrations, signing keys, TUF repository),
  its app served by uvicorn in a background thread on a free port of 127.0.0.1,
  with development settings (cookies over plain http) and e-mail to the outbox.
- The database is always a SQLite file of its own: ``VIGIL_TEST_DATABASE_URL``
  belongs to ``tests/portal``, whose fixtures drop that database's schema, and the
  live server commits for real (there is no test transaction to roll back).
- Chromium is Debian's (``/usr/bin/chromium``; Playwright cannot download one
  here), launched once per run; each test gets new browser contexts, so no
  cookies cross tests. Without it the tests are skipped, unless ``CI`` is set.
- ``screenshots`` keeps a picture of each step (and of every open page when a
  test fails) in ``artifacts/screenshots/<test>/``.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import uvicorn
from playwright.sync_api import sync_playwright
from pydantic import SecretStr
from sqlalchemy.orm import sessionmaker

from portal.db import make_engine, upgrade_database
from portal.repository.service import initialise_portal
from portal.settings import Settings
from portal.web.app import create_app
from tests.browser.support import ACTOR, LivePortal, Screenshots
from tests.portal.support import PASSPHRASE, SESSION_SECRET

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterator

    from playwright.sync_api import Browser, BrowserContext, Page
    from sqlalchemy.engine import Engine

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these Chromium phones home at start-up, and this machine's closed
    # network refuses the connections.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS_DIR = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
# A step that takes longer than this is a failure, not something to wait for.
STEP_TIMEOUT_MS = 10_000
SERVER_START_SECONDS = 15


#### The live portal ####


def _free_socket() -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    return listener


def _initialise(settings: Settings, engine: Engine) -> None:
    """``vigil-portal init`` without its administrator, through the same services."""
    upgrade_database(engine)
    with sessionmaker(bind=engine).begin() as session:
        initialise_portal(session, settings, actor=ACTOR)


def _serve(settings: Settings, listener: socket.socket) -> tuple[uvicorn.Server, threading.Thread]:
    """The portal app under uvicorn, in a thread, answering on ``listener``."""
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            lifespan="on",
            ws="none",
            # Leave the process's logging alone: uvicorn's records reach pytest's capture.
            log_config=None,
            log_level="warning",
            access_log=False,
            server_header=False,
        )
    )
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [listener]}, name="live-portal", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + SERVER_START_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            pytest.fail(f"the portal did not start on {settings.portal_url}")
        time.sleep(0.02)
    return server, thread


@pytest.fixture(scope="session")
def live_portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePortal]:
    home = tmp_path_factory.mktemp("browser") / "portal-home"
    listener = _free_socket()
    host, port = listener.getsockname()
    # Everything that matters is explicit, so no VIGIL_* variable of the
    # developer's shell (an SMTP host, a database) leaks into the run.
    settings = Settings(
        portal_home=home,
        database_url=f"sqlite:///{home / 'portal.db'}",
        environment="development",
        key_passphrase=SecretStr(PASSPHRASE),
        portal_url=f"http://{host}:{port}",
        session_secret=SecretStr(SESSION_SECRET),
        session_cookie_secure=False,
        smtp_host="",
        # Every test applies and signs in from 127.0.0.1; the limits have tests of their own.
        apply_rate_limit=1000,
        login_rate_limit=1000,
    )
    engine = make_engine(settings.database_url)
    try:
        _initialise(settings, engine)
        server, thread = _serve(settings, listener)
        try:
            yield LivePortal(
                url=settings.portal_url,
                settings=settings,
                session_factory=sessionmaker(bind=engine, expire_on_commit=False),
            )
        finally:
            server.should_exit = True
            thread.join(SERVER_START_SECONDS)
    finally:
        listener.close()
        engine.dispose()


#### The browser ####


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.is_file():
        message = f"the browser tests need Chromium at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must have it")
        pytest.skip(message)
    # launch() gives Chromium a fresh temporary profile (user-data dir) every run.
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


_CALL_REPORT = pytest.StashKey[pytest.TestReport]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if call.when == "call":
        item.stash[_CALL_REPORT] = report
    return report


@pytest.fixture
def screenshots(request: pytest.FixtureRequest) -> Screenshots:
    directory = SCREENSHOTS_DIR / re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name)
    shutil.rmtree(directory, ignore_errors=True)  # no pictures left from an earlier run
    return Screenshots(directory)


@pytest.fixture
def new_page(
    request: pytest.FixtureRequest,
    browser: Browser,
    live_portal: LivePortal,
    screenshots: Screenshots,
) -> Iterator[Callable[..., Page]]:
    """Open a page in a new browser context: a person of their own, with their own
    cookies. Keyword arguments go to ``Browser.new_context``.
    """
    contexts: list[BrowserContext] = []

    def open_page(**options: object) -> Page:
        context = browser.new_context(base_url=live_portal.url, **options)  # type: ignore[arg-type]
        context.set_default_timeout(STEP_TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield open_page
    report = request.node.stash.get(_CALL_REPORT, None)
    for context in contexts:
        if report is not None and report.failed:
            for page in context.pages:
                screenshots.take(page, "failed")
        context.close()


@pytest.fixture
def page(new_page: Callable[..., Page]) -> Page:
    """One person's page."""
    return new_page()
