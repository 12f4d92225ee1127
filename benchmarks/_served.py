"""A ``vigil-portal serve`` of the benchmark's own: a throwaway PostgreSQL database,
a portal home, the installed commands run with their environment, the server on a
free loopback port until the block ends. Shared by the benchmarks that measure a real
portal over HTTP (``bench_distribution``, ``bench_report``)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
from sqlalchemy.engine import make_url

BIN = Path(sys.executable).parent
PASSPHRASE = "benchmark passphrase, not a secret"  # noqa: S105 (a throwaway portal)


def step(message: str) -> None:
    print(f"== {message}", file=sys.stderr, flush=True)


def run(*args: str | Path, env: dict[str, str], timeout: float = 600) -> str:
    result = subprocess.run(
        [str(arg) for arg in args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, args[:3]))} failed:\n{result.stderr}")
    return result.stdout


def prepare_database(url: str) -> None:
    """Create the PostgreSQL database ``url`` names if missing, and empty it."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return
    if parsed.database in {None, "", "test", "postgres"}:
        raise SystemExit(f"refusing to reset database {parsed.database!r}; name another one")
    connect = {
        "host": parsed.host or "127.0.0.1",
        "port": parsed.port or 5432,
        "user": parsed.username or "postgres",
        "password": parsed.password,
        "connect_timeout": 5,
    }
    try:
        server = psycopg.connect(dbname="postgres", autocommit=True, **connect)
    except psycopg.OperationalError as error:
        where = make_url(url).render_as_string()
        raise SystemExit(f"cannot reach PostgreSQL for {where}: {error}") from None
    with server:
        exists = server.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (parsed.database,)
        ).fetchone()
        if not exists:
            server.execute(f'CREATE DATABASE "{parsed.database}"')
    with psycopg.connect(dbname=parsed.database, autocommit=True, **connect) as database:
        database.execute("DROP SCHEMA public CASCADE")
        database.execute("CREATE SCHEMA public")


def portal_environment(home: Path, database_url: str) -> dict[str, str]:
    """The environment of a development portal in ``home`` on ``database_url`` (none of
    the caller's ``VIGIL_`` settings)."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")},
        "VIGIL_PORTAL_HOME": str(home / "portal"),
        "VIGIL_ENVIRONMENT": "development",
        "VIGIL_KEY_PASSPHRASE": PASSPHRASE,
        "VIGIL_DATABASE_URL": database_url,
        "VIGIL_SESSION_COOKIE_SECURE": "false",
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_healthy(base_url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the portal exited:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise SystemExit("the portal did not answer /healthz within 60 s")


@contextlib.contextmanager
def serving(
    env: dict[str, str], home: Path, port: int, name: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``vigil-portal serve`` (one worker) on ``port`` until the block ends; yields its URL
    and its process."""
    base_url = f"http://127.0.0.1:{port}"
    log = home / f"serve-{name}.log"
    step(f"vigil-portal serve on {base_url} ({name} settings; log: {log})")
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(BIN / "vigil-portal"), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_healthy(base_url, process, log)
        yield base_url, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time of process ``pid`` so far (Linux ``/proc``; else None)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # utime and stime are fields 14 and 15 of stat(5); the split starts at field 3.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
