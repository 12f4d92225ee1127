"""License bearer authentication of engine requests (``portal.licenses.bearer``):
what is verified, what is remembered and for how long.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from licensing.tokens import LicenseClaims, issue_license
from portal.errors import (
    ExpiredLicenseError,
    InvalidLicenseTokenError,
    MissingLicenseError,
    NotYetValidLicenseError,
    RevokedLicenseError,
    SuspendedLicenseError,
)
from portal.licenses import bearer
from portal.licenses import service as license_service
from portal.repository.service import license_signing_key, open_repository
from tests.portal.support import ACTOR

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from sqlalchemy.orm import Session, sessionmaker

    from portal.settings import Settings
    from tests.portal.support import Licensed

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


class Clock:
    """Starts at the real time (licenses are issued "now"), then moves when told."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def keys(initialised: Settings) -> dict:
    return dict(open_repository(initialised, signing=False).license_keys().keys)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def reads() -> list[str]:
    return []


@pytest.fixture
def authenticator(
    session_factory: sessionmaker[Session], clock: Clock, reads: list[str]
) -> bearer.EngineAuthenticator:
    @contextlib.contextmanager
    def counting_reader() -> Iterator[Session]:
        reads.append("read")
        with session_factory() as session:
            yield session

    return bearer.EngineAuthenticator(
        counting_reader,
        token_ttl=timedelta(seconds=30),
        status_ttl=timedelta(seconds=5),
        clock=clock,
    )


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = bearer.verify_license

    def counting(token: str, *args: object, **kwargs: object):
        calls.append("verified")
        return real(token, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(bearer, "verify_license", counting)
    return calls


def authenticate(authenticator, licensed_or_token, keys, revoked=frozenset()):
    token = getattr(licensed_or_token, "token", licensed_or_token)
    return authenticator.authenticate(f"Bearer {token}", trusted_keys=keys, revoked=revoked)


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Token abc"])
def test_no_bearer_token_is_a_missing_license(header: str | None) -> None:
    with pytest.raises(MissingLicenseError):
        bearer.bearer_token(header)


def test_the_token_follows_the_scheme_in_any_case() -> None:
    assert bearer.bearer_token("bEaReR  abc.def.ghi ") == "abc.def.ghi"
    with pytest.raises(InvalidLicenseTokenError):
        bearer.bearer_token("Bearer   ")


def test_signatures_and_rows_are_remembered_for_their_periods(
    authenticator: bearer.EngineAuthenticator,
    make_licensed: Callable[..., Licensed],
    keys: dict,
    clock: Clock,
    verifications: list[str],
    reads: list[str],
) -> None:
    licensed = make_licensed()
    header = f"Bearer {licensed.token}"
    assert authenticator.authenticate_from_memory(header, trusted_keys=keys, revoked=()) is None
    engine = authenticate(authenticator, licensed, keys)
    assert (engine.license_id, engine.channels) == (licensed.license.id, ("stable",))
    for _ in range(3):
        assert (
            authenticator.authenticate_from_memory(header, trusted_keys=keys, revoked=()) == engine
        )
    assert (len(verifications), len(reads)) == (1, 1)
    clock.advance(seconds=6)  # the row is read again, the signature is still remembered
    assert authenticator.authenticate_from_memory(header, trusted_keys=keys, revoked=()) is None
    authenticate(authenticator, licensed, keys)
    assert (len(verifications), len(reads)) == (1, 2)
    clock.advance(seconds=25)
    authenticate(authenticator, licensed, keys)
    assert (len(verifications), len(reads)) == (2, 3)
    # Digests are kept, never the token.
    assert all(len(digest) == 32 for digest in authenticator.claims)


def test_a_suspension_takes_effect_within_the_status_period(
    authenticator: bearer.EngineAuthenticator,
    make_licensed: Callable[..., Licensed],
    keys: dict,
    clock: Clock,
    session: Session,
) -> None:
    licensed = make_licensed()
    authenticate(authenticator, licensed, keys)
    license_service.suspend_license(session, licensed.license.id, reason="check", actor=ACTOR)
    clock.advance(seconds=5)
    with pytest.raises(SuspendedLicenseError):
        authenticate(authenticator, licensed, keys)


def test_a_revocation_takes_effect_at_once_through_the_published_list(
    authenticator: bearer.EngineAuthenticator,
    make_licensed: Callable[..., Licensed],
    keys: dict,
) -> None:
    licensed = make_licensed()
    header = f"Bearer {licensed.token}"
    authenticate(authenticator, licensed, keys)
    revoked = {str(licensed.license.id)}
    with pytest.raises(RevokedLicenseError):
        authenticator.authenticate_from_memory(header, trusted_keys=keys, revoked=revoked)
    with pytest.raises(RevokedLicenseError):
        authenticate(authenticator, licensed, keys, revoked=revoked)


def test_a_remembered_token_is_not_trusted_past_its_expiry(
    authenticator: bearer.EngineAuthenticator,
    make_licensed: Callable[..., Licensed],
    keys: dict,
    clock: Clock,
) -> None:
    licensed = make_licensed()
    authenticate(authenticator, licensed, keys)
    clock.advance(days=31)
    with pytest.raises(ExpiredLicenseError):
        authenticate(authenticator, licensed, keys)


def test_zero_periods_remember_nothing(
    session_factory: sessionmaker[Session],
    make_licensed: Callable[..., Licensed],
    keys: dict,
    verifications: list[str],
) -> None:
    licensed = make_licensed()
    authenticator = bearer.EngineAuthenticator(
        session_factory, token_ttl=timedelta(0), status_ttl=timedelta(0)
    )
    for _ in range(2):
        authenticate(authenticator, licensed, keys)
    assert len(verifications) == 2
    assert len(authenticator.claims) == len(authenticator.rows) == 0


def test_the_caches_stay_bounded() -> None:
    cache: bearer.ExpiringCache[int, str] = bearer.ExpiringCache(max_entries=3)
    for key in range(10):
        cache.put(key, str(key), until=NOW + timedelta(seconds=30), now=NOW)
    assert len(cache) <= 3
    assert cache.get(9, NOW) == "9"
    assert cache.get(9, NOW + timedelta(seconds=30)) is None


def test_a_token_not_yet_valid_is_refused(
    authenticator: bearer.EngineAuthenticator,
    make_licensed: Callable[..., Licensed],
    keys: dict,
    clock: Clock,
) -> None:
    licensed = make_licensed()
    clock.advance(days=-1)
    with pytest.raises(NotYetValidLicenseError):
        authenticate(authenticator, licensed, keys)


def test_a_genuine_token_of_a_license_the_portal_does_not_know_is_invalid(
    authenticator: bearer.EngineAuthenticator,
    make_licensed: Callable[..., Licensed],
    keys: dict,
    initialised: Settings,
    clock: Clock,
) -> None:
    claims = LicenseClaims(
        iss=initialised.portal_url,
        sub=str(uuid.uuid4()),
        jti=str(uuid.uuid4()),
        iat=clock.now,
        nbf=clock.now,
        exp=clock.now + timedelta(days=1),
        org_name="Nobody Ltd",
        channels=("stable", "beta"),
        max_engines=99,
    )
    stray = issue_license(claims, license_signing_key(initialised).key)
    with pytest.raises(InvalidLicenseTokenError, match="does not know"):
        authenticate(authenticator, stray, keys)
    licensed = make_licensed()
    assert authenticate(authenticator, licensed, keys).license_id == licensed.license.id


def test_tokens_never_reach_the_logs(
    make_client: Callable[..., object],
    make_licensed: Callable[..., Licensed],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client()
    revoked = make_licensed("Gone Chat", status="revoked")
    good = make_licensed("Good Chat")
    for headers in (revoked.headers, good.headers, {"Authorization": "Bearer " + good.token[:-4]}):
        client.get("/tuf/metadata/timestamp.json", headers=headers)  # type: ignore[attr-defined]
    for token in (revoked.token, good.token):
        assert token not in caplog.text
        assert token.split(".")[2] not in caplog.text
