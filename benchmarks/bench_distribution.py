"""Distribution throughput: what one ``vigil-portal serve`` process gives engines.

Measures, over loopback, with real HTTP clients:

1. authenticated ``GET /tuf/metadata/timestamp.json`` requests per second, with
   ``wrk`` (Debian: ``apt-get install wrk``) and a Lua script adding the license
   as a bearer token. Target: >= 500 requests/s.
   A second run turns the authentication caches off (every request verifies
   the token's signature and reads the license's row), for the worst case.
2. bundle download throughput of one large bundle target with ``curl`` (and
   once with httpx, checking the SHA-256 the signed metadata lists).
   Target: >= 100 MB/s.

By default it builds everything in a temporary portal home: a PostgreSQL
database (``--database-url``, default ``vigil_bench5`` on 127.0.0.1, created if
missing and reset: never point it at a database you care about),
``vigil-portal init``, a synthetic ~200 MB bundle published on ``stable``
(random bytes: incompressible), a license, then ``vigil-portal serve`` with one
worker on a free port, stopped at the end. With ``--url URL --license FILE`` it
measures a portal that is already running instead (the largest bundle the
license may download is picked from the signed targets metadata).

Every step has a time limit; nothing leaves loopback unless ``--url`` says so.
Examples::

    python benchmarks/bench_distribution.py
    python benchmarks/bench_distribution.py --duration 20 --connections 64
    python benchmarks/bench_distribution.py --url http://127.0.0.1:8000 --license demo.license
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _served import BIN, free_port, portal_environment, prepare_database, run, serving, step
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
TARGET_REQUESTS_PER_SECOND = 500.0
TARGET_MB_PER_SECOND = 100.0
DEFAULT_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:5432/vigil_bench5"
BUNDLE_VERSION = "2026.11.1"
MODEL_MANIFEST = {
    "name": "bench",
    "created": "2026-11-20T10:00:00+00:00",
    "engine_version": ">=0.1.0,<1.0",
    "training_data_digest": "sha256:" + "ab" * 32,
    "recommended_threshold": 0.8,
    "characteristics": ["secrecy", "isolation"],
    "metrics": {"pr_auc": 0.91},
}
WRK_SCRIPT = """\
wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer {token}"
"""


#### A portal of our own ####


def write_model(directory: Path, megabytes: int) -> None:
    directory.mkdir(parents=True)
    with (directory / "model.skops").open("wb") as model:
        for _ in range(megabytes):
            model.write(os.urandom(1024 * 1024))
    (directory / "MODEL_CARD.md").write_text("# Benchmark model\n\nRandom bytes.\n")
    (directory / "manifest.json").write_text(json.dumps(MODEL_MANIFEST))


def setup_portal(args: argparse.Namespace, home: Path) -> tuple[dict[str, str], str]:
    """A portal in ``home`` with a large stable bundle; its environment and a license."""
    env = portal_environment(home, args.database_url)
    portal = BIN / "vigil-portal"
    step(f"portal in {home} on {make_url(args.database_url).render_as_string()}")
    prepare_database(args.database_url)
    run(portal, "init", "--admin-email", "bench@portal.example", env=env)
    step(f"publishing a synthetic {args.bundle_mb} MB bundle on stable")
    write_model(home / "model", args.bundle_mb)
    run(
        portal, "bundles", "publish", home / "model", "--version", BUNDLE_VERSION,
        "--channel", "stable", env=env,
    )  # fmt: skip
    shutil.rmtree(home / "model")
    run(
        portal, "licenses", "issue", "--org", "Bench Chat Ltd", "--days", "30",
        "--channel", "stable", "--out", home / "license.jwt", env=env,
    )  # fmt: skip
    return env, (home / "license.jwt").read_text().strip()


#### Measurements ####


def license_channels(token: str) -> list[str]:
    """The ``channels`` claim (read, not verified: the portal verifies it)."""
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return list(claims["channels"])


def largest_bundle(base_url: str, token: str) -> tuple[str, int, str]:
    """URL, length and SHA-256 of the largest bundle the license may download."""
    headers = {"Authorization": f"Bearer {token}"}

    def signed(name: str) -> dict[str, Any]:
        response = httpx.get(f"{base_url}/tuf/metadata/{name}", headers=headers, timeout=30)
        response.raise_for_status()
        document: dict[str, Any] = response.json()["signed"]
        return document

    snapshot_version = signed("timestamp.json")["meta"]["snapshot.json"]["version"]
    targets_version = signed(f"{snapshot_version}.snapshot.json")["meta"]["targets.json"]["version"]
    targets = signed(f"{targets_version}.targets.json")["targets"]
    channels = set(license_channels(token))
    bundles = [
        (info["length"], path, info["hashes"]["sha256"])
        for path, info in targets.items()
        if info.get("custom", {}).get("kind") == "bundle"
        and info["custom"].get("channel") in channels
    ]
    if not bundles:
        raise SystemExit("the license may download no bundle")
    length, path, sha256 = max(bundles)
    directory, _, name = path.rpartition("/")
    return f"{base_url}/tuf/targets/{directory}/{sha256}.{name}", length, sha256


def check_authentication(url: str, token: str) -> None:
    anonymous = httpx.get(url, timeout=10)
    licensed = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    if anonymous.status_code != 401 or licensed.status_code != 200:
        raise SystemExit(
            f"unexpected answers: anonymous {anonymous.status_code}, "
            f"licensed {licensed.status_code} {licensed.text[:200]}"
        )


def wrk_requests_per_second(
    url: str, token: str, *, duration: int, connections: int, threads: int, workdir: Path
) -> dict[str, Any]:
    script = workdir / "bearer.lua"
    script.write_text(WRK_SCRIPT.format(token=token))
    script.chmod(0o600)
    command = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency",
        "--timeout", "5s", "-s", str(script), url,
    ]  # fmt: skip
    subprocess.run(
        [*command[:3], "-d2s", *command[4:]], capture_output=True, timeout=30, check=False
    )
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=duration + 30, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"wrk failed: {result.stderr}")
    output = result.stdout
    rate = re.search(r"Requests/sec:\s+([0-9.]+)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    latencies = dict(re.findall(r"^\s+(50|90|99)%\s+(\S+)", output, flags=re.MULTILINE))
    errors = re.search(r"Socket errors:.*", output)
    if rate is None:
        raise SystemExit(f"could not read wrk's output:\n{output}")
    return {
        "requests_per_second": float(rate.group(1)),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": errors.group(0) if errors else "",
        "latency": latencies,
        "raw": output,
    }


def curl_megabytes_per_second(url: str, token: str, *, runs: int, workdir: Path) -> list[float]:
    # The header goes through a file, so the token is not on a command line.
    header_file = workdir / "curl-headers"
    header_file.write_text(f"Authorization: Bearer {token}\n")
    header_file.chmod(0o600)
    speeds = []
    for _ in range(runs):
        result = subprocess.run(
            [
                "curl", "--silent", "--show-error", "--fail", "--output", "/dev/null",
                "--header", f"@{header_file}", "--write-out", "%{speed_download} %{size_download}",
                url,
            ],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise SystemExit(f"curl failed: {result.stderr}")
        speed, _size = result.stdout.split()
        speeds.append(float(speed) / 1e6)
    return speeds


def httpx_megabytes_per_second(url: str, token: str, *, length: int, sha256: str) -> float:
    digest = hashlib.sha256()
    received = 0
    started = time.perf_counter()
    with httpx.stream(
        "GET", url, headers={"Authorization": f"Bearer {token}"}, timeout=300
    ) as response:
        response.raise_for_status()
        for chunk in response.iter_raw(1024 * 1024):
            digest.update(chunk)
            received += len(chunk)
    elapsed = time.perf_counter() - started
    if received != length or digest.hexdigest() != sha256:
        raise SystemExit("the downloaded bundle does not match the signed metadata")
    return received / elapsed / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_DATABASE)
    parser.add_argument("--url", default="", help="measure this running portal instead")
    parser.add_argument("--license", type=Path, help="license token file (with --url)")
    parser.add_argument("--port", type=int, default=0, help="port of our portal (default: free)")
    parser.add_argument("--bundle-mb", type=int, default=200)
    parser.add_argument("--duration", type=int, default=10, help="seconds of wrk load")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--downloads", type=int, default=3, help="curl downloads")
    parser.add_argument(
        "--skip-uncached",
        action="store_true",
        help="skip the second run with the authentication caches turned off",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    if shutil.which("curl") is None:
        raise SystemExit("curl is not installed")

    wrk_options = {
        "duration": args.duration,
        "connections": args.connections,
        "threads": args.threads,
    }
    uncached: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="vigil-bench-distribution-") as scratch:
        workdir = Path(scratch)
        if args.url:
            if args.license is None:
                raise SystemExit("--url needs --license FILE")
            env: dict[str, str] = {}
            token = args.license.read_text().strip()
            portal: Any = contextlib.nullcontext((args.url.rstrip("/"), None))
        else:
            env, token = setup_portal(args, workdir)
            portal = serving(env, workdir, args.port or free_port(), "default")
        with portal as (base_url, _process):
            timestamp_url = f"{base_url}/tuf/metadata/timestamp.json"
            check_authentication(timestamp_url, token)
            step(
                f"wrk: {args.duration} s, {args.connections} connections, "
                f"{args.threads} thread(s), GET /tuf/metadata/timestamp.json"
            )
            load = wrk_requests_per_second(timestamp_url, token, workdir=workdir, **wrk_options)
            bundle_url, length, sha256 = largest_bundle(base_url, token)
            step(f"downloading a {length / 1e6:.0f} MB bundle: curl x{args.downloads}, httpx x1")
            curl_speeds = curl_megabytes_per_second(
                bundle_url, token, runs=args.downloads, workdir=workdir
            )
            httpx_speed = httpx_megabytes_per_second(
                bundle_url, token, length=length, sha256=sha256
            )
        if not args.url and not args.skip_uncached:
            # The worst case: every request verifies the signature and reads the row.
            no_memory = {
                **env,
                "VIGIL_ENGINE_TOKEN_CACHE_SECONDS": "0",
                "VIGIL_ENGINE_STATUS_CACHE_SECONDS": "0",
            }
            with serving(no_memory, workdir, free_port(), "uncached") as (base_url, _process):
                step("wrk again, with nothing remembered between requests")
                uncached = wrk_requests_per_second(
                    f"{base_url}/tuf/metadata/timestamp.json", token, workdir=workdir, **wrk_options
                )

    rate = load["requests_per_second"]
    latency = ", ".join(f"p{k} {v}" for k, v in sorted(load["latency"].items()))
    print(f"authenticated timestamp.json: {rate:,.0f} requests/s ({latency})")
    if load["non_2xx"] or load["socket_errors"]:
        print(f"  non-2xx responses: {load['non_2xx']}  {load['socket_errors']}")
    if uncached is not None:
        latency = ", ".join(f"p{k} {v}" for k, v in sorted(uncached["latency"].items()))
        print(
            f"  with nothing remembered (signature verified, row read per request): "
            f"{uncached['requests_per_second']:,.0f} requests/s ({latency})"
        )
    runs = ", ".join(f"{speed:,.0f}" for speed in curl_speeds)
    print(
        f"bundle download ({length / 1e6:.0f} MB): curl median "
        f"{statistics.median(curl_speeds):,.0f} MB/s (runs: {runs}), "
        f"httpx with SHA-256 check {httpx_speed:,.0f} MB/s"
    )
    ok_rate = rate >= TARGET_REQUESTS_PER_SECOND and load["non_2xx"] == 0
    ok_speed = statistics.median(curl_speeds) >= TARGET_MB_PER_SECOND
    print(
        f"targets: >= {TARGET_REQUESTS_PER_SECOND:.0f} requests/s: "
        f"{'meets' if ok_rate else 'MISSES'}; >= {TARGET_MB_PER_SECOND:.0f} MB/s: "
        f"{'meets' if ok_speed else 'MISSES'}"
    )
    return 0 if ok_rate and ok_speed else 1


if __name__ == "__main__":
    sys.exit(main())
