"""``vigil-engine report`` throughput: N reviewed conversations' feedback to the portal.

Fills a temporary engine home's review queue with N (default 100,000) reviewed items
whose feature vectors look like real ones (about 400 non-zero hashed word and word-pair
features, values k/sqrt(length), plus the dense features), then runs ``vigil-engine
report --json`` (the installed command, in its own process, as a scheduler would) and
times it: queuing into the outbox one batch per transaction while the batches queued
are sent (gzipped when that pays), so the two times printed overlap.
Target: 100,000 feedback records in under 10 s. Generating the items, and writing them
to disk, is not timed.

By default against a portal of its own, as the target states: ``vigil-portal init`` in a
temporary home on a PostgreSQL database (``--database-url``, default
``vigil_bench_report`` on 127.0.0.1, created if missing and emptied: never point it at a
database you care about), the reference model published on ``stable``, a license, then
``vigil-portal serve`` on a free loopback port, stopped at the end::

    python benchmarks/bench_report.py [--records 100000] [--database-url URL]

Against the engine tests' fake portal (``tests/scoring_engine/portal_server.py``, in
this process, validating every record and decoding every vector as the real portal
does; ``--no-validate`` checks only each batch's shape, to time the engine alone). The
time the fake portal spent answering is printed too, summed over its requests (the
engine sends a few batches at once, so the sum can exceed the sending time)::

    python benchmarks/bench_report.py --fake [--records 100000]

Against a portal that is already running, with the trust root and a license it issued
(the engine home is initialised with ``vigil-engine init --portal``, which activates it:
the license needs a free engine seat)::

    python benchmarks/bench_report.py --portal http://127.0.0.1:8000 \\
        --root root.json --license license.jwt

or with an engine home that is already initialised and activated there (its review
queue gets the synthetic items: use a throw-away home)::

    python benchmarks/bench_report.py --portal http://127.0.0.1:8000 --home /tmp/bench-engine

Prints the time, batches, records per second, the CPU time the ``report`` process used
(on a machine of few cores the engine, the portal and PostgreSQL share them; with a
portal of its own, the portal's CPU time is printed too, read from ``/proc``) and whether
the target was met (exit 1 if not, 2 if ``report`` failed).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _served import (
    cpu_seconds,
    free_port,
    portal_environment,
    prepare_database,
    run,
    serving,
    step,
)

from scoring_engine.home import EngineHome
from scoring_engine.localdb import connect
from scoring_engine.model.features import DENSE_FEATURES, FEATURE_VERSION, N_HASH_FEATURES
from scoring_engine.model.lexicon import CHARACTERISTICS
from scoring_engine.model.vectors import ENCODING, FEATURE_DIM

TARGET_SECONDS = 10.0
BIN = Path(sys.executable).parent
REFERENCE_MODEL = Path(__file__).resolve().parent.parent / "models" / "reference"
BUNDLE_VERSION = "2026.11.0"
BUNDLE = f"reference-{BUNDLE_VERSION}"
DEFAULT_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:5432/vigil_bench_report"
VERDICTS = ("not_grooming", "grooming", "imminent_threat")


def _features(rng: np.random.Generator, nnz: int) -> str:
    """One stored feature vector (``FeatureVector.to_dict`` JSON) of a plausible shape."""
    hashed = np.sort(rng.choice(N_HASH_FEATURES, size=nnz, replace=False)).astype("<i4")
    dense = np.arange(N_HASH_FEATURES, FEATURE_DIM, dtype="<i4")
    indices = np.concatenate([hashed, dense])
    scale = 1.0 / np.sqrt(rng.integers(200, 2000))
    counts = rng.choice([1, 1, 1, 1, 2, 2, 3, 4], size=nnz)
    values = np.concatenate([counts * scale, rng.random(len(DENSE_FEATURES))]).astype("<f4")
    data = zlib.compress(indices.tobytes() + values.tobytes(), 6)
    return json.dumps(
        {
            "version": FEATURE_VERSION,
            "dim": FEATURE_DIM,
            "nnz": int(indices.size),
            "encoding": ENCODING,
            "data": base64.b64encode(data).decode("ascii"),
        },
        separators=(",", ":"),
    )


def fill_queue(home: Path, records: int, *, seed: int = 0, nnz: int = 400) -> None:
    """``records`` reviewed items in the home's local database, ready to be reported."""
    rng = np.random.default_rng(seed)

    def rows() -> Iterator[tuple[str, str, str, float, str, str, str, str]]:
        for i in range(records):
            characteristics = {
                name: round(float(v), 3)
                for name, v in zip(CHARACTERISTICS, rng.random(len(CHARACTERISTICS)), strict=True)
            }
            score = round(float(rng.uniform(0.5, 1.0)), 4)
            score_line = json.dumps(
                {
                    "id": f"bench-{i}",
                    "score": score,
                    "flagged": True,
                    "threshold": 0.5,
                    "characteristics": characteristics,
                    "evidence": [],
                    "first_flag_message": 3,
                    "bundle": BUNDLE,
                }
            )
            conversation = json.dumps(
                {"messages": [{"author": "u1", "text": f"synthetic message {i}", "ts": None}]}
            )
            yield (
                uuid.uuid4().hex,
                f"bench-{i}",
                BUNDLE,
                score,
                score_line,
                conversation,
                _features(rng, int(rng.integers(nnz * 9 // 10, nnz * 11 // 10 + 1))),
                VERDICTS[i % 3],
            )

    with connect(EngineHome(home)) as connection:
        connection.executemany(
            "INSERT INTO review_items (item_id, conversation_id, queued_at, bundle, score,"
            " threshold, score_line, conversation, features, verdict, moderator, reviewed_at)"
            " VALUES (?, ?, '2026-12-01T00:00:00Z', ?, ?, 0.5, ?, ?, ?, ?,"
            " 'bench', '2026-12-02T10:00:00Z')",
            rows(),
        )


def _engine(home: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "vigil-engine"), *map(str, args), "--home", str(home)],
        capture_output=True,
        text=True,
        check=False,
    )


def _init(home: Path, root: Path, license_file: Path, portal: str) -> None:
    result = _engine(home, "init", "--root", root, "--license", license_file, "--portal", portal)
    if result.returncode != 0:
        sys.exit(f"vigil-engine init failed ({result.returncode}): {result.stderr.strip()}")


def _measure(home: Path, records: int, nnz: int) -> int:
    print(f"Filling the review queue with {records:,} reviewed items ...", flush=True)
    started = time.perf_counter()
    fill_queue(home, records, nnz=nnz)
    # The items' hundreds of megabytes go to disk now, not while ``report`` is timed.
    os.sync()
    print(f"  done in {time.perf_counter() - started:.1f} s (not timed)")
    started = time.perf_counter()
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = _engine(home, "report", "--json")
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    engine_cpu = after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime
    if result.returncode != 0:
        print(result.stdout)
        print(f"vigil-engine report failed ({result.returncode}): {result.stderr.strip()}")
        return 2
    summary = json.loads(result.stdout)
    print(
        f"  queuing {summary['seconds']['queue']:.2f} s, sending {summary['seconds']['send']:.2f} s"
        f"; the engine's CPU time {engine_cpu:.2f} s"
    )
    sent = summary["records_sent"]
    batches = summary["batches_sent"] + summary["batches_duplicate"]
    print(
        f"report: {sent:,} records in {batches:,} batches, {elapsed:.2f} s "
        f"({sent / elapsed:,.0f} records/s); target {records:,} in < {TARGET_SECONDS:.0f} s "
        f"(scaled: {elapsed * 100_000 / max(records, 1):.2f} s per 100,000)"
    )
    ok = sent >= records and elapsed * 100_000 / max(records, 1) < TARGET_SECONDS
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def _fake(work: Path, records: int, nnz: int, *, validate: bool) -> int:
    from tests.scoring_engine.licensed import FakePortal  # noqa: PLC0415
    from tests.scoring_engine.portal_server import start_server  # noqa: PLC0415

    # No bundle is published: reporting needs the trust root, a license and a lease.
    portal = FakePortal.create(work / "portal", work / "no-model")
    server = start_server(portal)
    server.record_bodies = False
    server.validate_records = validate
    try:
        home = work / "engine"
        _init(home, portal.root_file(), portal.issue(), server.base_url)
        code = _measure(home, records, nnz)
        print(
            f"fake portal: {len(server.feedback):,} feedback records kept, "
            f"{server.report_seconds:.2f} s spent answering"
        )
        return code
    finally:
        server.stop()


def _own_portal(work: Path, records: int, nnz: int, database_url: str) -> int:
    """A portal of the benchmark's own on ``database_url`` (see the module notes)."""
    env = portal_environment(work, database_url)
    portal = BIN / "vigil-portal"
    step(f"portal in {work} on {make_url(database_url).render_as_string()}")
    prepare_database(database_url)
    run(portal, "init", "--admin-email", "bench@portal.example", env=env)
    step(f"publishing {REFERENCE_MODEL.name} {BUNDLE_VERSION} on stable; a license")
    run(
        portal, "bundles", "publish", REFERENCE_MODEL, "--version", BUNDLE_VERSION,
        "--channel", "stable", env=env,
    )  # fmt: skip
    run(
        portal, "licenses", "issue", "--org", "Bench Chat Ltd", "--days", "30",
        "--channel", "stable", "--out", work / "license.jwt", env=env,
    )  # fmt: skip
    run(portal, "repo", "root", "--out", work / "root.json", env=env)
    with serving(env, work, free_port(), "default") as (base_url, process):
        home = work / "engine"
        _init(home, work / "root.json", work / "license.jwt", base_url)
        before = cpu_seconds(process.pid)
        code = _measure(home, records, nnz)
        after = cpu_seconds(process.pid)
    if before is not None and after is not None:
        print(f"the portal's CPU time {after - before:.2f} s (PostgreSQL's not counted)")
    return code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument(
        "--nnz",
        type=int,
        default=400,
        help="hashed features per vector, +-10%% (400: about the 90th percentile of the"
        " real data's conversation windows; their median is about 130)",
    )
    parser.add_argument(
        "--database-url",
        default=DEFAULT_DATABASE,
        help="PostgreSQL database of the benchmark's own portal (created if missing, emptied)",
    )
    parser.add_argument("--fake", action="store_true", help="use the tests' fake portal")
    parser.add_argument("--no-validate", action="store_true", help="fake portal: skip vectors")
    parser.add_argument("--portal", help="URL of a running portal")
    parser.add_argument("--root", type=Path, help="its trust root (with --license)")
    parser.add_argument("--license", type=Path, help="a license it issued")
    parser.add_argument("--home", type=Path, help="an engine home initialised at --portal")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vigil-bench-report-") as tmp:
        work = Path(tmp)
        if args.fake:
            return _fake(work, args.records, args.nnz, validate=not args.no_validate)
        if not args.portal:
            return _own_portal(work, args.records, args.nnz, args.database_url)
        if args.home is not None:
            return _measure(args.home, args.records, args.nnz)
        if args.root is None or args.license is None:
            parser.error("--portal needs --root and --license, or --home")
        home = work / "engine"
        _init(home, args.root, args.license, args.portal)
        return _measure(home, args.records, args.nnz)


if __name__ == "__main__":
    sys.exit(main())
