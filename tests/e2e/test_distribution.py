"""A portal and two engines on loopback, driven through their CLIs as operators would.

`vigil-portal serve` runs as a real server process; engines update over HTTP with the
stock python-tuf client. This is the "done when" of the distribution issue.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
REFERENCE = ROOT / "models" / "reference"
DEMO = ROOT / "examples" / "demo.jsonl"

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Operator:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")},
            "VIGIL_PORTAL_HOME": str(tmp / "portal"),
            "VIGIL_ENVIRONMENT": "development",
        }

    def run(
        self, tool: str, *args: str, expect: int | None = 0
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(BIN / tool), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if expect is not None:
            assert result.returncode == expect, (args, result.stdout, result.stderr)
        return result

    def portal(self, *args: str, expect: int | None = 0) -> subprocess.CompletedProcess[str]:
        return self.run("vigil-portal", *args, expect=expect)

    def engine(
        self, home: str, *args: str, expect: int | None = 0
    ) -> subprocess.CompletedProcess[str]:
        return self.run("vigil-engine", *args, "--home", str(self.tmp / home), expect=expect)


@contextmanager
def serving_portal(op: Operator) -> Iterator[str]:
    """``vigil-portal serve`` on a free loopback port; yields its URL."""
    port = _free_port()
    server = subprocess.Popen(
        [str(BIN / "vigil-portal"), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=op.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail("vigil-portal serve did not start")
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("distribution")
    op = Operator(tmp)
    op.portal("init")
    op.portal("bundles", "publish", str(REFERENCE), "--version", "2026.11.0", "--channel", "stable")
    license_id = op.portal(
        "licenses",
        "issue",
        "--org",
        "Loopback Chat",
        "--days",
        "30",
        "--channel",
        "stable",
        "--max-engines",
        "1",
        "--out",
        str(tmp / "org.license"),
    ).stdout.strip()
    op.portal("repo", "root", "--out", str(tmp / "root.json"))
    try:
        with serving_portal(op) as url:
            yield op, url, license_id
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _status(url: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_engines_update_seats_refusals_and_revocation_on_loopback(world):
    op, url, license_id = world
    tmp = op.tmp
    init = ("init", "--root", str(tmp / "root.json"), "--license", str(tmp / "org.license"))

    # The first engine activates, updates to the published bundle and scores.
    op.engine("a", *init, "--portal", url)
    first = op.engine("a", "update")
    assert "2026.11.0" in first.stdout + first.stderr
    op.engine("a", "score", str(DEMO), "--out", str(tmp / "scores.jsonl"))
    assert len((tmp / "scores.jsonl").read_text().splitlines()) == 4

    # A second engine is refused beyond the license's one seat.
    refused = op.engine("b", *init, "--portal", url, expect=3)
    assert "engine" in refused.stderr.lower()

    # A newly published version reaches the first engine.
    op.portal("bundles", "publish", str(REFERENCE), "--version", "2026.11.1", "--channel", "stable")
    second = op.engine("a", "update")
    assert "2026.11.1" in second.stdout + second.stderr
    status = op.engine("a", "status", "--json").stdout
    assert "2026.11.1" in status

    # Every signing key rotates, root last (signed by old and new root keys): the engine
    # follows the new metadata, still trusts the license signed by the old license key,
    # and updates to the next version.
    for role in ("timestamp", "snapshot", "targets", "license", "root"):
        op.portal("keys", "rotate", role)
    op.portal("bundles", "publish", str(REFERENCE), "--version", "2026.11.2", "--channel", "stable")
    third = op.engine("a", "update")
    assert "2026.11.2" in third.stdout + third.stderr
    op.engine("a", "score", str(DEMO), "--out", str(tmp / "scores.jsonl"))

    # Anonymous and bogus-bearer requests are refused.
    timestamp = f"{url}/tuf/metadata/timestamp.json"
    assert _status(timestamp, {}) == 401
    assert _status(timestamp, {"Authorization": "Bearer not-a-license"}) == 401

    # Revocation stops both update and score with exit 3.
    op.portal("licenses", "revoke", license_id, "--reason", "end-to-end test")
    stopped = op.engine("a", "update", expect=3)
    assert "revoked" in stopped.stderr.lower()
    refused_score = op.engine("a", "score", str(DEMO), expect=3)
    assert "revoked" in refused_score.stderr.lower()


def _replace_with(path: Path, content: bytes) -> None:
    """Replace a served file the way an attacker with disk access would: a new file."""
    temporary = path.with_name(path.name + ".swap")
    temporary.write_bytes(content)
    temporary.replace(path)


def test_tampered_target_and_rolled_back_metadata_from_the_running_portal_are_refused(world):
    op, url, _ = world
    tmp = op.tmp
    op.portal(
        "licenses",
        "issue",
        "--org",
        "Second Loopback Chat",
        "--days",
        "30",
        "--channel",
        "stable",
        "--max-engines",
        "1",
        "--out",
        str(tmp / "second.license"),
    )
    op.engine(
        "c",
        "init",
        "--root",
        str(tmp / "root.json"),
        "--license",
        str(tmp / "second.license"),
        "--portal",
        url,
    )
    op.engine("c", "update")
    repository = tmp / "portal" / "repository"

    # A bundle whose bytes were changed on the portal's disk after it was signed.
    op.portal("bundles", "publish", str(REFERENCE), "--version", "2026.12.0", "--channel", "stable")
    (target,) = (repository / "targets").rglob("*.reference-2026.12.0.tar")
    original = target.read_bytes()
    tampered = bytearray(original)
    tampered[len(tampered) // 2] ^= 0xFF
    _replace_with(target, bytes(tampered))
    refused = op.engine("c", "update", expect=4)
    assert refused.stderr.strip()
    _replace_with(target, original)
    op.engine("c", "update")

    # Metadata rolled back to an older signed timestamp.
    timestamp = repository / "metadata" / "timestamp.json"
    older = timestamp.read_bytes()
    op.portal("bundles", "publish", str(REFERENCE), "--version", "2026.12.1", "--channel", "stable")
    newer = timestamp.read_bytes()
    op.engine("c", "update")
    _replace_with(timestamp, older)
    rolled_back = op.engine("c", "update", expect=4)
    assert rolled_back.stderr.strip()
    _replace_with(timestamp, newer)
    op.engine("c", "score", str(DEMO), "--out", str(tmp / "c-scores.jsonl"))
