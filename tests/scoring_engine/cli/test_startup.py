"""What a ``vigil-engine`` command loads before it runs: schedulers start ``report`` and
``status`` every few minutes, so the commands that never score leave numpy (and the
model code behind it) unloaded."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("numpy", "scipy", "sklearn", "skops")


def test_loading_the_commands_leaves_numpy_and_the_model_unloaded():
    probe = (
        "import sys, scoring_engine.cli, scoring_engine.outbox;"
        f" print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
