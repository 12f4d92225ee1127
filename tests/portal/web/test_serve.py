"""``vigil-portal serve`` runs the app factory's app under uvicorn."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import uvicorn
from fastapi import FastAPI

if TYPE_CHECKING:
    import pytest

    from portal.settings import Settings
    from tests.portal.support import PortalCli


def test_serve_runs_uvicorn_with_the_host_and_port(
    cli: PortalCli, initialised: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []

    def fake_run(app: object, **options: Any) -> None:
        calls.append({"app": app, **options})

    monkeypatch.setattr(uvicorn, "run", fake_run)
    result = cli("serve", "--host", "0.0.0.0", "--port", "8123")  # noqa: S104
    assert result.exit_code == 0, result.stderr
    [call] = calls
    assert isinstance(call["app"], FastAPI)
    assert (call["host"], call["port"]) == ("0.0.0.0", 8123)  # noqa: S104
    assert call["forwarded_allow_ips"] == initialised.forwarded_allow_ips
    assert "plain http" in result.stderr  # the tests' settings send cookies over http


def test_serve_refuses_a_database_without_schema(
    cli: PortalCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("portal.cli.serve.current_revision", lambda: None)
    monkeypatch.setattr(uvicorn, "run", lambda *_args, **_kwargs: None)
    result = cli("serve")
    assert result.exit_code == 2
    assert "vigil-portal init" in result.stderr
