"""Helpers shared by the portal tests."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy.orm import Session
    from typer.testing import CliRunner, Result

PASSPHRASE = "correct horse battery staple"  # noqa: S105 (test keys only)
ACTOR = "test:operator"

MODEL_MANIFEST: dict[str, Any] = {
    "name": "vigil",
    "version": None,
    "created": "2026-11-20T10:00:00+00:00",
    "engine_version": ">=0.1.0,<1.0",
    "training_data_digest": "sha256:" + "ab" * 32,
    "recommended_threshold": 0.8,
    "characteristics": ["secrecy", "isolation"],
    "metrics": {"pr_auc": 0.91},
    "prevalence": 0.05,
}


@contextlib.contextmanager
def savepoint(session: Session) -> Iterator[None]:
    """Run a block that is expected to fail in a SAVEPOINT, so the test's
    transaction stays usable afterwards (PostgreSQL aborts it on an error).
    """
    nested = session.begin_nested()
    try:
        yield
    finally:
        if nested.is_active:
            nested.rollback()


@dataclass
class PortalCli:
    """``vigil-portal`` run in-process by typer's ``CliRunner``."""

    runner: CliRunner

    def __call__(self, *args: str) -> Result:
        # Imported here: the root app loads the training stack, which only CLI tests need.
        from portal.cli import app  # noqa: PLC0415

        return self.runner.invoke(app, list(args))
