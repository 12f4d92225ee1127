"""What the licensed engine spends before it scores: license and bundle verification, model load.

Publishes MODEL_DIR (a directory as ``vigil-portal models train`` writes it, e.g.
``models/reference/``) as a signed bundle in a throw-away TUF repository, installs the
export into a throw-away engine home as ``vigil-engine install`` does, then times each
check ``score`` and ``evaluate`` run first, printing medians::

    python benchmarks/bench_engine_verification.py models/reference/ [--runs 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from licensing.bundles import MANIFEST_FORMAT, BundleManifest, build_bundle
from licensing.export import export_bundle
from licensing.keys import generate_private_key
from licensing.repository import Repository
from licensing.tokens import LicenseClaims, issue_license
from scoring_engine import trust
from scoring_engine.home import EngineHome
from scoring_engine.installed import (
    current_record,
    install_export,
    load_installed_model,
    verify_installed_files,
)
from scoring_engine.model.directory import load_model_dir

VERSION = "2026.11.0"


def _median_ms(action: Callable[[], object], runs: int) -> tuple[float, float]:
    action()  # warm-up: imports, caches
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings) * 1e3, min(timings) * 1e3


def _publish(model_dir: Path, work: Path) -> tuple[Repository, bytes, str, Path]:
    repo = Repository.create(
        work / "repository",
        {role: [generate_private_key()] for role in ("root", "targets", "snapshot", "timestamp")},
    )
    license_key = generate_private_key()
    repo.set_license_keys([license_key.public_key()])
    model_manifest = json.loads((model_dir / "manifest.json").read_text(encoding="utf-8"))
    manifest = BundleManifest.from_dict(
        {
            **model_manifest,
            "format": MANIFEST_FORMAT,
            "name": "reference",
            "version": VERSION,
            "created": model_manifest.get("created") or datetime.now(UTC).isoformat(),
            "files": {},
        }
    )
    bundle_file = work / f"reference-{VERSION}.tar"
    build_bundle(model_dir, bundle_file, manifest)
    target = repo.add_bundle(bundle_file, channel="stable")
    repo.publish()
    export = work / f"reference-{VERSION}.vigil"
    export_bundle(repo, target, export)

    now = datetime.now(UTC)
    claims = LicenseClaims(
        iss="https://portal.example",
        sub="org-bench",
        jti="lic-bench",
        iat=now - timedelta(days=1),
        nbf=now - timedelta(days=1),
        exp=now + timedelta(days=365),
        org_name="Benchmark Chat Ltd",
        channels=("stable",),
        max_engines=3,
    )
    return repo, repo.root_bytes(), issue_license(claims, license_key), export


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path, help="model directory (e.g. models/reference/)")
    parser.add_argument("--runs", type=int, default=20, help="timed runs per measurement")
    args = parser.parse_args()
    model_dir: Path = args.model_dir
    for name in ("manifest.json", "model.skops", "MODEL_CARD.md"):
        if not (model_dir / name).is_file():
            parser.error(f"{model_dir} has no {name}")

    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as scratch:
        work = Path(scratch)
        _, root, token, export = _publish(model_dir, work)
        home = EngineHome(work / "engine")
        trust.initialise(home, root, token, None)
        start = time.perf_counter()
        install_export(home, export)
        install_ms = (time.perf_counter() - start) * 1e3
        record = current_record(home)
        assert record is not None
        directory = home.bundles / record.directory
        size = (directory / "model.skops").stat().st_size

        rows = [
            (
                "license verification (token, keys, revocations, clock)",
                _median_ms(
                    lambda: trust.verify_stored_license(home, trust.clock()), args.runs * 10
                ),
            ),
            (
                "bundle verification (sha256 of installed files)",
                _median_ms(lambda: verify_installed_files(home, record), args.runs),
            ),
            (
                "model load (skops, allow-listed types)",
                _median_ms(lambda: load_model_dir(directory), args.runs),
            ),
            (
                "everything before scoring (load_installed_model)",
                _median_ms(lambda: load_installed_model(home), args.runs),
            ),
        ]

    print(
        f"model {model_dir}: model.skops {size / 1e6:.1f} MB; install (one run) {install_ms:.0f} ms"
    )
    for label, (median, best) in rows:
        print(f"{label:<52} median {median:8.2f} ms   best {best:8.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
