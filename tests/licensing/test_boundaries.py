"""``licensing`` is a pure library: it imports no portal, engine, web or database code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from licensing import exceptions

FORBIDDEN = ("portal", "scoring_engine", "fastapi", "starlette", "sqlalchemy", "alembic")


def test_licensing_imports_neither_portal_nor_engine_nor_web_or_database():
    code = (
        "import sys, licensing, licensing.export, licensing.repository\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.stdout.strip() == ""


def test_every_error_carries_its_exit_code():
    assert exceptions.LicenseError.exit_code == 3
    assert exceptions.BundleError.exit_code == 4
    assert exceptions.RepositoryError.exit_code == 4
    assert exceptions.ExpiredMetadataError.exit_code == 4
    assert exceptions.RepositoryUnreachableError.exit_code == 5
    assert exceptions.SigningKeyError.exit_code == 2
    for name in ("BundleVerificationError", "BundleRollbackError", "IncompatibleEngineError"):
        assert getattr(exceptions, name).exit_code == 4
