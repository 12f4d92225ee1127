"""License verification latency: the median of 1000 ``verify_license`` calls.

Target: under 1 ms per verification. Run with ``python benchmarks/bench_licensing.py``.
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from licensing.keys import generate_private_key, key_id
from licensing.tokens import LicenseClaims, issue_license, verify_license

RUNS = 1000
TARGET_SECONDS = 0.001


def main() -> int:
    key = generate_private_key()
    now = datetime.now(UTC)
    claims = LicenseClaims(
        iss="https://portal.example",
        sub="org-42",
        jti="lic-bench",
        iat=now - timedelta(days=1),
        nbf=now - timedelta(days=1),
        exp=now + timedelta(days=365),
        org_name="Benchmark Chat Ltd",
        channels=("stable",),
        max_engines=3,
        features=("review_queue", "cybertip_export"),
    )
    token = issue_license(claims, key)
    trusted = {key_id(key): key.public_key()}
    revoked = {f"lic-{n}" for n in range(1000)}
    for _ in range(50):  # warm-up
        verify_license(token, trusted, reference_time=now, revoked=revoked)

    timings = []
    for _ in range(RUNS):
        start = time.perf_counter()
        verify_license(token, trusted, reference_time=now, revoked=revoked)
        timings.append(time.perf_counter() - start)

    median = statistics.median(timings)
    p99 = statistics.quantiles(timings, n=100)[98]
    print(f"verify_license: median {median * 1e6:.0f} µs, p99 {p99 * 1e6:.0f} µs over {RUNS} runs")
    print("target < 1000 µs:", "met" if median < TARGET_SECONDS else "MISSED")
    return 0 if median < TARGET_SECONDS else 1


if __name__ == "__main__":
    raise SystemExit(main())
