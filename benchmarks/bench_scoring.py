"""Scoring throughput and memory, end to end, as an operator runs it.

    python benchmarks/bench_scoring.py ../shared/data/windows/dev.jsonl.gz [MODEL_DIR]

Runs ``vigil-portal models evaluate MODEL_DIR INPUT --json`` in a fresh process (so process
start, imports and model load are included), and reports wall time, messages per second and
peak resident memory of that process. Then scores the first half of the input alone, to show
that peak memory does not grow with the number of conversations.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLI = Path(sys.executable).parent / "vigil-portal"


# A small parent per run, so each run's peak memory is measured on its own.
MEASURE = (
    "import resource, subprocess, sys; "
    "out = subprocess.run(sys.argv[1:], check=True, capture_output=True, text=True); "
    "sys.stdout.write(out.stdout); "
    "sys.stderr.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))"
)


def run(model: Path, data: Path) -> dict[str, float]:
    started = time.perf_counter()
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            MEASURE,
            str(CLI),
            "models",
            "evaluate",
            str(model),
            str(data),
            "--json",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    peak_kib = int(out.stderr.strip().splitlines()[-1])
    summary = json.loads(out.stdout)["summary"]
    return {
        "conversations": summary["scored"],
        "messages": summary["messages"],
        "wall_seconds": round(wall, 2),
        "messages_per_second_end_to_end": round(summary["messages"] / wall),
        "messages_per_second_scoring": summary["messages_per_second"],
        "peak_rss_mib": round(peak_kib / 1024, 1),
    }


def main() -> None:
    data = Path(sys.argv[1])
    model = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "models" / "reference"
    full = run(model, data)
    print("full input:", json.dumps(full))
    with tempfile.TemporaryDirectory() as tmp:
        half = Path(tmp) / "half.jsonl"
        with gzip.open(data, "rt", encoding="utf-8") as source:
            lines = source.readlines()
        half.write_text("".join(lines[: len(lines) // 2]), encoding="utf-8")
        del lines
        print("half input:", json.dumps(run(model, half)))


if __name__ == "__main__":
    main()
