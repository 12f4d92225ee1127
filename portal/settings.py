"""The portal's settings: one pydantic-settings class read from ``VIGIL_*`` variables.

Rules:

- ``VIGIL_ENVIRONMENT`` defaults to ``production``: a portal holds the keys
  that sign every license and model, so it is safe unless told otherwise.
- Outside ``development`` the settings are refused (``ConfigurationError``)
  when ``VIGIL_KEY_PASSPHRASE`` is missing, empty, a known placeholder or
  shorter than 12 characters, or when ``VIGIL_PORTAL_URL`` is not https.
- In ``development`` without a passphrase, signing keys are written
  unencrypted and every command that writes one says so.
- ``VIGIL_DATABASE_URL`` defaults to the SQLite file ``portal.db`` in
  ``VIGIL_PORTAL_HOME``; a bare ``postgresql://`` URL is read as psycopg 3,
  the driver the portal ships with.
- The web portal signs its cookies and CSRF tokens with ``VIGIL_SESSION_SECRET``.
  Outside ``development`` it must be set (at least 32 characters, not a
  placeholder) and session cookies must carry the ``Secure`` flag. In
  ``development`` without it, a random secret is drawn once per process (sessions
  end when the portal restarts) and ``VIGIL_SESSION_COOKIE_SECURE=false`` is
  allowed for plain http on localhost.
- E-mail goes over SMTP when ``VIGIL_SMTP_HOST`` is set, else to one ``.eml``
  file per message in ``$VIGIL_PORTAL_HOME/outbox/``.
- ``vigil-portal serve`` re-signs the timestamp itself: every
  ``VIGIL_REPOSITORY_REFRESH_INTERVAL_SECONDS`` (0 turns it off, e.g. when a
  cron job runs ``vigil-portal repo refresh``) it re-signs once the timestamp
  (or snapshot, or targets) expires within ``VIGIL_REPOSITORY_REFRESH_MARGIN_HOURS``,
  which must be longer than the interval and shorter than the timestamp's expiry.
"""

from __future__ import annotations

import functools
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Final, Literal, Self

import platformdirs
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from licensing.repository import RepositoryExpiries
from portal.errors import ConfigurationError

DEVELOPMENT: Final = "development"
PRODUCTION: Final = "production"
MIN_PASSPHRASE_LENGTH: Final = 12
MIN_SESSION_SECRET_LENGTH: Final = 32
PLACEHOLDER_SECRETS: Final = frozenset({"changethis", "changeme", "secret", "password"})


def default_portal_home() -> Path:
    return Path(platformdirs.user_data_dir("vigil-portal", appauthor=False))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VIGIL_", extra="ignore", frozen=True)

    portal_home: Path = Field(
        default_factory=default_portal_home,
        description="Keys, the update repository and (by default) the database live here.",
    )
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL; empty means sqlite:///{portal_home}/portal.db.",
    )
    environment: Literal["development", "production"] = PRODUCTION
    key_passphrase: SecretStr | None = Field(
        default=None, description="Encrypts every private signing key at rest."
    )
    portal_url: str = Field(
        default="http://127.0.0.1:8000",
        description="The portal's public URL; the 'iss' of every license.",
    )
    root_expiry_days: int = Field(default=365, gt=0)
    targets_expiry_days: int = Field(default=90, gt=0)
    snapshot_expiry_days: int = Field(default=7, gt=0)
    timestamp_expiry_days: int = Field(default=1, gt=0)
    license_grace_days: int = Field(default=14, ge=0)
    repository_refresh_interval_seconds: int = Field(
        default=3600,
        ge=0,
        description="How often 'serve' checks whether to re-sign the timestamp; 0: never.",
    )
    repository_refresh_margin_hours: int = Field(
        default=6, gt=0, description="Re-sign when the timestamp expires within this."
    )

    # Engine API: leases and license bearer tokens.
    lease_days: int = Field(
        default=7, gt=0, le=90, description="How long an engine's lease (seat) lasts."
    )
    engine_token_cache_seconds: int = Field(
        default=30,
        ge=0,
        le=300,
        description="How long a verified license token's claims are remembered.",
    )
    engine_status_cache_seconds: int = Field(
        default=5,
        ge=0,
        le=60,
        description="How long a license's status is remembered: a suspension takes effect "
        "within this (a revocation at once, through the published revocation list).",
    )

    # Web portal: sessions and cookies.
    session_secret: SecretStr | None = Field(
        default=None, description="Signs session cookies and CSRF tokens (32+ characters)."
    )
    session_cookie_secure: bool = Field(
        default=True, description="Send cookies over https only; false for local http only."
    )
    session_minutes: int = Field(
        default=480, gt=0, le=7 * 24 * 60, description="An administrator's session lifetime."
    )

    # Web portal: logins and rate limits.
    login_max_failures: int = Field(default=5, gt=0)
    login_failure_window_minutes: int = Field(default=15, gt=0)
    login_lockout_minutes: int = Field(default=15, gt=0)
    login_rate_limit: int = Field(
        default=20, gt=0, description="POST /admin/login per client address per window."
    )
    login_rate_window_seconds: int = Field(default=300, gt=0)
    apply_rate_limit: int = Field(
        default=5, gt=0, description="POST /apply per client address per window."
    )
    apply_rate_window_seconds: int = Field(default=3600, gt=0)
    forwarded_allow_ips: str = Field(
        default="127.0.0.1",
        description="Proxies whose X-Forwarded-For uvicorn trusts for the client address.",
    )

    # Web portal: links and licenses of approved applications.
    status_link_days: int = Field(default=30, gt=0, le=365)
    download_link_days: int = Field(default=7, gt=0, le=90)
    invitation_hours: int = Field(default=72, gt=0, le=24 * 30)
    approved_license_days: int = Field(default=365, gt=0, le=3660)

    # E-mail.
    smtp_host: str = Field(default="", description="Empty: e-mail goes to the outbox folder.")
    smtp_port: int = Field(default=587, gt=0, lt=65536)
    smtp_user: str = ""
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = True
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)
    email_from: str = Field(
        default="Vigil portal <portal@localhost>", description="The From header of every e-mail."
    )

    @field_validator("portal_home")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("portal_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _derive_and_check(self) -> Self:
        url = self.database_url or f"sqlite:///{self.portal_home / 'portal.db'}"
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        # The model is frozen; derived values are set once, here.
        object.__setattr__(self, "database_url", url)
        self._check_refresh_schedule()
        if self.environment != DEVELOPMENT:
            self._check_production_secrets()
        elif self.session_secret is None or not self.session_secret.get_secret_value():
            object.__setattr__(self, "session_secret", SecretStr(secrets.token_urlsafe(32)))
        return self

    def _check_refresh_schedule(self) -> None:
        interval = timedelta(seconds=self.repository_refresh_interval_seconds)
        margin = timedelta(hours=self.repository_refresh_margin_hours)
        if not interval:
            return
        if margin <= interval:
            raise ValueError(
                "VIGIL_REPOSITORY_REFRESH_MARGIN_HOURS must be longer than the refresh "
                "interval, or the timestamp could expire between two checks"
            )
        if margin >= timedelta(days=self.timestamp_expiry_days):
            raise ValueError(
                "VIGIL_REPOSITORY_REFRESH_MARGIN_HOURS must be shorter than the timestamp "
                "expiry, or every check would re-sign it"
            )

    def _check_production_secrets(self) -> None:
        passphrase = self.key_passphrase.get_secret_value() if self.key_passphrase else ""
        if not passphrase:
            raise ValueError(
                "VIGIL_KEY_PASSPHRASE must be set outside development "
                "(it encrypts the signing keys)"
            )
        if passphrase.lower() in PLACEHOLDER_SECRETS or len(passphrase) < MIN_PASSPHRASE_LENGTH:
            raise ValueError(
                "VIGIL_KEY_PASSPHRASE is a placeholder or shorter than "
                f"{MIN_PASSPHRASE_LENGTH} characters"
            )
        if not self.portal_url.startswith("https://"):
            raise ValueError("VIGIL_PORTAL_URL must be an https URL outside development")
        session_secret = self.session_secret.get_secret_value() if self.session_secret else ""
        if (
            len(session_secret) < MIN_SESSION_SECRET_LENGTH
            or session_secret.lower() in PLACEHOLDER_SECRETS
        ):
            raise ValueError(
                "VIGIL_SESSION_SECRET must be set outside development, at least "
                f"{MIN_SESSION_SECRET_LENGTH} characters (it signs sessions and CSRF tokens)"
            )
        if not self.session_cookie_secure:
            raise ValueError("VIGIL_SESSION_COOKIE_SECURE may be false in development only")

    @property
    def is_development(self) -> bool:
        return self.environment == DEVELOPMENT

    @property
    def keys_dir(self) -> Path:
        return self.portal_home / "keys"

    @property
    def repository_dir(self) -> Path:
        return self.portal_home / "repository"

    @property
    def repository_expiries(self) -> RepositoryExpiries:
        return RepositoryExpiries(
            root=timedelta(days=self.root_expiry_days),
            targets=timedelta(days=self.targets_expiry_days),
            snapshot=timedelta(days=self.snapshot_expiry_days),
            timestamp=timedelta(days=self.timestamp_expiry_days),
        )

    @property
    def lease_period(self) -> timedelta:
        return timedelta(days=self.lease_days)

    @property
    def repository_refresh_interval(self) -> timedelta:
        return timedelta(seconds=self.repository_refresh_interval_seconds)

    @property
    def repository_refresh_margin(self) -> timedelta:
        return timedelta(hours=self.repository_refresh_margin_hours)

    @property
    def license_grace(self) -> timedelta:
        return timedelta(days=self.license_grace_days)

    @property
    def outbox_dir(self) -> Path:
        return self.portal_home / "outbox"

    @property
    def session_lifetime(self) -> timedelta:
        return timedelta(minutes=self.session_minutes)

    def session_key(self) -> bytes:
        """The key that signs cookies and CSRF tokens (always set after validation)."""
        if self.session_secret is None:  # pragma: no cover - the validator sets it
            raise ConfigurationError("VIGIL_SESSION_SECRET is not set")
        return self.session_secret.get_secret_value().encode()

    def passphrase(self) -> str | None:
        """The key passphrase, or None (development only: keys unencrypted)."""
        if self.key_passphrase is None or not self.key_passphrase.get_secret_value():
            return None
        return self.key_passphrase.get_secret_value()


def _describe(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        problems.append(f"VIGIL_{field.upper()}: {message}" if field else message)
    return "; ".join(problems)


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once (tests call ``get_settings.cache_clear()``).

    Raises:
        ConfigurationError: A variable is malformed or a secret is missing.
    """
    try:
        return Settings()
    except ValidationError as error:
        raise ConfigurationError(f"invalid settings: {_describe(error)}") from None
