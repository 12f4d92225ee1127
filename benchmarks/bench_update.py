"""From publishing a bundle to engines running it: ``bundles publish`` to ``update`` finished.

Publishes MODEL_DIR (e.g. ``models/reference/``) as a new bundle version on the stable
channel, then runs ``vigil-engine update`` (the installed command, in its own process, as
a scheduler would) against the portal, and times both. The target is under 5 s from the
start of the publish to the end of the update. Prints the median and worst of ``--runs``::

    python benchmarks/bench_update.py models/reference/ [--runs 5]

By default the portal is the engine tests' local HTTP server
(``tests/scoring_engine/portal_server.py``) serving a repository built with the licensing
library in a throw-away directory. Against a real portal, publish with its CLI (the
portal's ``VIGIL_PORTAL_HOME`` / ``VIGIL_DATABASE_URL`` must be set in the environment)::

    python benchmarks/bench_update.py models/reference/ --portal http://127.0.0.1:8000 \\
        --root root.json --license license.jwt
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.scoring_engine.licensed import FakePortal
from tests.scoring_engine.portal_server import start_server

TARGET_SECONDS = 5.0
BIN = Path(sys.executable).parent


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(arg) for arg in args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"{' '.join(map(str, args[:2]))} failed ({result.returncode}): {result.stderr}")
    return result


def _engine(home: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return _run(BIN / "vigil-engine", *args, "--home", home)


def _measure(
    publish: Callable[[str], None], home: Path, versions: list[str]
) -> list[tuple[float, float]]:
    timings = []
    for version in versions:
        start = time.perf_counter()
        publish(version)
        published = time.perf_counter()
        output = _engine(home, "update").stdout
        finished = time.perf_counter()
        if f"-{version} " not in output:
            sys.exit(f"update did not install {version}: {output}")
        timings.append((published - start, finished - published))
    return timings


def _local(model_dir: Path, work: Path, runs: int) -> tuple[list[tuple[float, float]], float]:
    portal = FakePortal.create(work / "portal", model_dir)
    portal.publish("2026.11.0")
    server = start_server(portal)
    try:
        home = work / "engine"
        _engine(
            home,
            "init",
            "--root",
            portal.root_file(),
            "--license",
            portal.issue(),
            "--portal",
            server.base_url,
        )
        start = time.perf_counter()
        _engine(home, "update")
        first = time.perf_counter() - start
        versions = [f"2026.12.{run}" for run in range(runs)]
        return _measure(portal.publish, home, versions), first
    finally:
        server.stop()


def _remote(
    model_dir: Path, work: Path, runs: int, portal_url: str, root: Path, license_file: Path
) -> tuple[list[tuple[float, float]], float]:
    home = work / "engine"
    _engine(home, "init", "--root", root, "--license", license_file, "--portal", portal_url)
    start = time.perf_counter()
    _engine(home, "update")
    first = time.perf_counter() - start
    # Versions above anything the portal holds: dotted numbers from the current time.
    stamp = datetime.now(UTC)
    versions = [f"{stamp:%Y}.{stamp:%m%d}.{stamp:%H%M%S}{run}" for run in range(runs)]

    def publish(version: str) -> None:
        _run(BIN / "vigil-portal", "bundles", "publish", model_dir, "--version", version)

    return _measure(publish, home, versions), first


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path, help="model directory (e.g. models/reference/)")
    parser.add_argument("--runs", type=int, default=5, help="bundles published and pulled")
    parser.add_argument("--portal", help="a running portal's URL (default: a local server)")
    parser.add_argument("--root", type=Path, help="with --portal: its root.json")
    parser.add_argument("--license", type=Path, help="with --portal: a license token file")
    args = parser.parse_args()
    for name in ("manifest.json", "model.skops", "MODEL_CARD.md"):
        if not (args.model_dir / name).is_file():
            parser.error(f"{args.model_dir} has no {name}")
    if args.portal and not (args.root and args.license):
        parser.error("--portal needs --root and --license")

    with tempfile.TemporaryDirectory(prefix="vigil-bench-update-") as scratch:
        work = Path(scratch)
        if args.portal:
            timings, first = _remote(
                args.model_dir, work, args.runs, args.portal, args.root, args.license
            )
            where = args.portal
        else:
            timings, first = _local(args.model_dir, work, args.runs)
            where = "local test server (127.0.0.1)"

    totals = [publish + update for publish, update in timings]
    size = (args.model_dir / "model.skops").stat().st_size
    print(f"portal: {where}; model.skops {size / 1e6:.2f} MB; {len(timings)} runs")
    print(f"first update (activation renewal, metadata, bundle, install): {first:.2f} s")
    print(
        f"publish:  median {statistics.median(p for p, _ in timings):.2f} s, "
        f"worst {max(p for p, _ in timings):.2f} s"
    )
    print(
        f"update:   median {statistics.median(u for _, u in timings):.2f} s, "
        f"worst {max(u for _, u in timings):.2f} s (vigil-engine update, own process)"
    )
    worst = max(totals)
    verdict = "met" if worst < TARGET_SECONDS else "NOT met"
    print(
        f"publish to update finished: median {statistics.median(totals):.2f} s, worst "
        f"{worst:.2f} s (target < {TARGET_SECONDS:.0f} s: {verdict})"
    )
    return 0 if worst < TARGET_SECONDS else 1


if __name__ == "__main__":
    raise SystemExit(main())
