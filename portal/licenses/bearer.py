"""Engines authenticate with their license: ``Authorization: Bearer <license token>``.

Every route under ``/tuf/`` and ``/api/`` depends on ``EngineAuthenticator``
(through ``portal.web.deps.LicensedEngine``). Rules, in order:

1. Only the ``Authorization`` header counts (no cookie, no query parameter).
   Without it, or with another scheme: 401 ``missing_license``.
2. The token is verified with ``licensing.tokens.verify_license`` against the
   license keys the update repository publishes (the keys engines use), with
   no grace period: past ``exp`` (plus the clock-skew leeway) is 403
   ``license_expired``; before ``nbf`` is 403 ``license_not_yet_valid``; any
   other failure (malformed, wrong signature, unknown ``kid``, wrong ``typ``) is
   401 ``invalid_license``.
3. A license on the signed revocation list the repository publishes is 403
   ``license_revoked``, checked in memory on every request: revoking publishes
   the list, which every portal process sees on its next request.
4. The license's row decides the rest: unknown id is 401 ``invalid_license``;
   ``revoked`` 403 ``license_revoked``; ``suspended`` 403 ``license_suspended``;
   a recorded expiry in the past 403 ``license_expired``.

What is remembered, per process (so a busy portal does no cryptography and no
database work for an engine polling ``timestamp.json``):

- verified claims, for ``VIGIL_ENGINE_TOKEN_CACHE_SECONDS`` (30), never past the
  token's own expiry, keyed by the token's SHA-256. Finding the entry by a hash
  of the secret (not the secret) is what makes the lookup safe without a
  constant-time comparison: learning that two digests match reveals nothing
  about a token. The cache holds digests and claims, never tokens;
- the license's row, for ``VIGIL_ENGINE_STATUS_CACHE_SECONDS`` (5): a
  suspension (or a row's expiry) takes effect within that time; 0 reads the
  row on every request. Revocation does not wait for it (rule 3).

Tokens never appear in logs, events or error messages.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final, Generic, TypeVar

from sqlalchemy import bindparam, select

from licensing.config import DEFAULT_CONFIG
from licensing.exceptions import LicenseError, LicenseExpiredError, LicenseNotYetValidError
from licensing.tokens import LicenseClaims, verify_license
from portal.db_base import utc_now
from portal.errors import (
    ExpiredLicenseError,
    InvalidLicenseTokenError,
    MissingLicenseError,
    NotYetValidLicenseError,
    RevokedLicenseError,
    SuspendedLicenseError,
)
from portal.licenses.models import License, LicenseStatus

if TYPE_CHECKING:
    import contextlib
    from collections.abc import Callable, Collection, Iterator, Mapping

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session

    DatabaseReader = Callable[[], contextlib.AbstractContextManager[Session | Connection]]

MAX_CACHED: Final = 10_000
_NO_GRACE: Final = timedelta(0)
_LICENSE_ROW: Final = select(License.status, License.expires_at).where(
    License.id == bindparam("license_id")
)

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True)
class LicensedEngine:
    """Who an authenticated engine request comes from."""

    license_id: uuid.UUID
    claims: LicenseClaims

    @property
    def channels(self) -> tuple[str, ...]:
        return self.claims.channels


@dataclass(frozen=True)
class LicenseRow:
    status: LicenseStatus
    expires_at: datetime


class ExpiringCache(Generic[K, V]):
    """A small thread-safe map whose entries expire; bounded in size."""

    def __init__(self, *, max_entries: int = MAX_CACHED) -> None:
        self._entries: dict[K, tuple[datetime, V]] = {}
        self._lock = threading.Lock()
        self.max_entries = max_entries

    def get(self, key: K, now: datetime) -> V | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if now >= entry[0]:
                del self._entries[key]
                return None
            return entry[1]

    def put(self, key: K, value: V, *, until: datetime, now: datetime) -> None:
        if until <= now:
            return
        with self._lock:
            if key not in self._entries and len(self._entries) >= self.max_entries:
                self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
            self._entries[key] = (until, value)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[K]:
        with self._lock:
            return iter(list(self._entries))

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer`` header.

    Raises:
        MissingLicenseError: No header, or another scheme.
        InvalidLicenseTokenError: ``Bearer`` without a token.
    """
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        raise MissingLicenseError(
            "send the organisation's license token as 'Authorization: Bearer <token>'"
        )
    token = token.strip()
    if not token:
        raise InvalidLicenseTokenError("the bearer token is empty")
    return token


def _verify(
    token: str, trusted_keys: Mapping[str, Ed25519PublicKey], now: datetime
) -> LicenseClaims:
    try:
        return verify_license(token, trusted_keys, reference_time=now, grace=_NO_GRACE).claims
    except LicenseExpiredError:
        raise ExpiredLicenseError("the license has expired: renew it to receive updates") from None
    except LicenseNotYetValidError as error:
        raise NotYetValidLicenseError(str(error)) from None
    except LicenseError as error:
        raise InvalidLicenseTokenError(f"the license token is not valid: {error}") from None


def _check_row(row: LicenseRow | None, now: datetime) -> None:
    if row is None:
        raise InvalidLicenseTokenError("the portal does not know this license")
    if row.status is LicenseStatus.REVOKED:
        raise RevokedLicenseError("the license has been revoked")
    if row.status is LicenseStatus.SUSPENDED:
        raise SuspendedLicenseError(
            "the license is suspended: the organisation should contact the portal operator"
        )
    if now >= row.expires_at + DEFAULT_CONFIG.leeway:
        raise ExpiredLicenseError("the license has expired: renew it to receive updates")


class EngineAuthenticator:
    """Authenticates engine requests (see the module rules); one per app.

    Args:
        reader: Opens a connection (or session) to read license rows.
        token_ttl: How long verified claims are remembered.
        status_ttl: How long a license's row is remembered.
        clock: The current time (UTC-aware).
    """

    def __init__(
        self,
        reader: DatabaseReader,
        *,
        token_ttl: timedelta,
        status_ttl: timedelta,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._reader = reader
        self.token_ttl = token_ttl
        self.status_ttl = status_ttl
        self._clock = clock
        self.claims: ExpiringCache[bytes, LicenseClaims] = ExpiringCache()
        self.rows: ExpiringCache[uuid.UUID, LicenseRow] = ExpiringCache()

    def authenticate_from_memory(
        self,
        authorization: str | None,
        *,
        trusted_keys: Mapping[str, Ed25519PublicKey],
        revoked: Collection[str],
    ) -> LicensedEngine | None:
        """The answer of ``authenticate`` when it needs neither cryptography nor
        the database (everything remembered), else None. Raises like it.
        """
        return self._authenticate(
            authorization, trusted_keys=trusted_keys, revoked=revoked, from_memory=True
        )

    def authenticate(
        self,
        authorization: str | None,
        *,
        trusted_keys: Mapping[str, Ed25519PublicKey],
        revoked: Collection[str],
    ) -> LicensedEngine:
        """The license the request carries, if the portal serves it now (blocking).

        Raises:
            MissingLicenseError, InvalidLicenseTokenError: 401.
            RevokedLicenseError, SuspendedLicenseError, ExpiredLicenseError,
            NotYetValidLicenseError: 403.
        """
        engine = self._authenticate(
            authorization, trusted_keys=trusted_keys, revoked=revoked, from_memory=False
        )
        if engine is None:  # pragma: no cover - only the from_memory path gives None
            raise RuntimeError("authentication without memory gave no answer")
        return engine

    def _authenticate(
        self,
        authorization: str | None,
        *,
        trusted_keys: Mapping[str, Ed25519PublicKey],
        revoked: Collection[str],
        from_memory: bool,
    ) -> LicensedEngine | None:
        now = self._clock()
        token = bearer_token(authorization)
        digest = hashlib.sha256(token.encode()).digest()
        claims = self.claims.get(digest, now)
        if claims is None:
            if from_memory:
                return None
            claims = _verify(token, trusted_keys, now)
            self.claims.put(digest, claims, until=min(now + self.token_ttl, claims.exp), now=now)
        if claims.jti in revoked:
            raise RevokedLicenseError("the license has been revoked")
        try:
            license_id = uuid.UUID(claims.jti)
        except ValueError:
            raise InvalidLicenseTokenError("the portal does not know this license") from None
        row = self.rows.get(license_id, now)
        if row is None:
            if from_memory:
                return None
            row = self._read_row(license_id)
            if row is not None:
                self.rows.put(license_id, row, until=now + self.status_ttl, now=now)
        _check_row(row, now)
        return LicensedEngine(license_id=license_id, claims=claims)

    def _read_row(self, license_id: uuid.UUID) -> LicenseRow | None:
        with self._reader() as database:
            found = database.execute(_LICENSE_ROW, {"license_id": license_id}).one_or_none()
        return None if found is None else LicenseRow(status=found[0], expires_at=found[1])
