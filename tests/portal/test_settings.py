"""Settings: defaults, derived values, and refusing missing secrets outside development."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from portal.errors import ConfigurationError
from portal.settings import Settings, get_settings

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("VIGIL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("VIGIL_PORTAL_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _production(monkeypatch: pytest.MonkeyPatch, **variables: str) -> None:
    monkeypatch.setenv("VIGIL_KEY_PASSPHRASE", "a long enough passphrase")
    monkeypatch.setenv("VIGIL_PORTAL_URL", "https://portal.example")
    monkeypatch.setenv("VIGIL_SESSION_SECRET", "s" * 40)
    for name, value in variables.items():
        monkeypatch.setenv(f"VIGIL_{name.upper()}", value)


def test_development_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VIGIL_ENVIRONMENT", "development")
    settings = get_settings()
    assert settings.database_url == f"sqlite:///{tmp_path / 'home' / 'portal.db'}"
    assert settings.keys_dir == tmp_path / "home" / "keys"
    assert settings.repository_dir == tmp_path / "home" / "repository"
    assert settings.passphrase() is None
    assert settings.license_grace == timedelta(days=14)
    assert settings.repository_expiries.timestamp == timedelta(days=1)
    assert settings.portal_url == "http://127.0.0.1:8000"


def test_production_is_the_default_and_needs_a_passphrase() -> None:
    with pytest.raises(ConfigurationError, match="VIGIL_KEY_PASSPHRASE must be set"):
        get_settings()


@pytest.mark.parametrize("passphrase", ["changethis", "short"])
def test_production_refuses_placeholder_or_short_passphrases(
    monkeypatch: pytest.MonkeyPatch, passphrase: str
) -> None:
    _production(monkeypatch, key_passphrase=passphrase)
    with pytest.raises(ConfigurationError, match="placeholder or shorter"):
        get_settings()


def test_production_needs_an_https_portal_url(monkeypatch: pytest.MonkeyPatch) -> None:
    _production(monkeypatch, portal_url="http://portal.example")
    with pytest.raises(ConfigurationError, match="https"):
        get_settings()


def test_production_with_its_secrets_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    _production(monkeypatch, portal_url="https://portal.example/", timestamp_expiry_days="2")
    settings = get_settings()
    assert settings.environment == "production"
    assert settings.passphrase() == "a long enough passphrase"
    assert "a long enough passphrase" not in repr(settings)
    assert settings.portal_url == "https://portal.example"
    assert settings.repository_expiries.timestamp == timedelta(days=2)


def test_postgresql_urls_use_psycopg(monkeypatch: pytest.MonkeyPatch) -> None:
    _production(monkeypatch, database_url="postgresql://vigil@db/vigil")
    assert get_settings().database_url == "postgresql+psycopg://vigil@db/vigil"


def test_malformed_values_are_named_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    _production(monkeypatch, snapshot_expiry_days="0")
    with pytest.raises(ConfigurationError, match="VIGIL_SNAPSHOT_EXPIRY_DAYS"):
        get_settings()


def test_settings_are_read_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_ENVIRONMENT", "development")
    first = get_settings()
    monkeypatch.setenv("VIGIL_PORTAL_URL", "http://elsewhere")
    assert get_settings() is first
    assert Settings().portal_url == "http://elsewhere"


@pytest.mark.parametrize("secret", ["", "changethis", "too-short"])
def test_production_needs_a_real_session_secret(
    monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    _production(monkeypatch, session_secret=secret)
    with pytest.raises(ConfigurationError, match="VIGIL_SESSION_SECRET"):
        get_settings()


def test_production_refuses_insecure_cookies(monkeypatch: pytest.MonkeyPatch) -> None:
    _production(monkeypatch, session_cookie_secure="false")
    with pytest.raises(ConfigurationError, match="VIGIL_SESSION_COOKIE_SECURE"):
        get_settings()


def test_development_draws_a_session_secret_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_ENVIRONMENT", "development")
    settings = get_settings()
    assert len(settings.session_key()) >= 32
    assert settings.session_key() not in repr(settings).encode()
    assert Settings().session_key() != settings.session_key()


def test_web_and_mail_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VIGIL_ENVIRONMENT", "development")
    settings = get_settings()
    assert settings.outbox_dir == tmp_path / "home" / "outbox"
    assert settings.smtp_host == ""
    assert settings.session_cookie_secure is True
    assert settings.session_lifetime == timedelta(hours=8)
    assert (settings.login_max_failures, settings.login_failure_window_minutes) == (5, 15)
