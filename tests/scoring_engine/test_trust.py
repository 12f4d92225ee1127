"""The engine's trust rules, one function at a time (the CLI tests cover them end to end)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from licensing.exceptions import (
    InvalidLicenseError,
    LicenseExpiredError,
    LicenseNotYetValidError,
    LicenseRevokedError,
    RepositoryError,
    SigningKeyError,
    UnsafeBundleError,
)
from licensing.keys import generate_private_key
from licensing.tokens import LicenseClaims, LicenseStatus, VerifiedLicense, issue_license
from scoring_engine.errors import BadInputError, ExitCode
from scoring_engine.home import EngineHome
from scoring_engine.trust import (
    BundleCheckError,
    ClockSetBackError,
    LicenseCheckError,
    TrustRootError,
    check_clock,
    check_validity_window,
    describe_license,
    engine_error,
    inspect_license,
    license_warnings,
    parse_trust_root,
)
from tests.scoring_engine.licensed import FakePortal, hs256_with_public_key, with_alg_none

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
GRACE = timedelta(days=14)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(**overrides) -> LicenseClaims:
    values = {
        "iss": "https://portal.example",
        "sub": "org-42",
        "jti": "lic-0001",
        "iat": NOW - timedelta(days=10),
        "nbf": NOW - timedelta(days=10),
        "exp": NOW + timedelta(days=30),
        "org_name": "Example Chat Ltd",
        "channels": ("stable",),
        "max_engines": 3,
    }
    return LicenseClaims(**{**values, **overrides})


LICENSE_KEY = generate_private_key()


@pytest.fixture
def token() -> str:
    return issue_license(_claims(), LICENSE_KEY)


@pytest.fixture
def home(tmp_path) -> EngineHome:
    return EngineHome(tmp_path / "home")


#### Trust root ####


@pytest.fixture
def fake_portal(tmp_path):
    return FakePortal.create(tmp_path / "portal", tmp_path / "no-model")


def test_a_self_signed_root_is_accepted(fake_portal):
    root = parse_trust_root(fake_portal.repo.root_bytes())
    assert (root.version, root.threshold, root.root_keys) == (1, 1, 1)


def test_a_root_signed_by_another_key_is_refused(fake_portal, tmp_path):
    other = FakePortal.create(tmp_path / "other", tmp_path / "no-model")
    document = json.loads(fake_portal.repo.root_bytes())
    document["signatures"] = json.loads(other.repo.root_bytes())["signatures"]
    with pytest.raises(TrustRootError, match="not signed by a threshold"):
        parse_trust_root(json.dumps(document).encode())


def test_an_oversized_root_is_refused_before_parsing():
    with pytest.raises(TrustRootError, match="larger than"):
        parse_trust_root(b" " * (2 * 1024 * 1024 + 1))


#### License inspection without keys ####


def test_inspection_reads_header_and_claims(token):
    inspected = inspect_license(token)
    assert inspected.claims == _claims()
    assert inspected.algorithm == "Ed25519"
    assert len(inspected.kid) == 64


def _token_with_header(token: str, header: dict) -> str:
    _, payload, signature = token.split(".")
    return ".".join([_b64(json.dumps(header).encode()), payload, signature])


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda _: "x" * 9000, "larger than"),
        (lambda _: "a.b", "not a compact JWS"),
        (lambda t: ".".join(["!!", *t.split(".")[1:]]), "header is not base64url"),
        (lambda t: with_alg_none(t, "kid"), "'none' is not accepted"),
        (lambda t: hs256_with_public_key(t, LICENSE_KEY), "'HS256' is not accepted"),
        (
            lambda t: _token_with_header(
                t, {"alg": "Ed25519", "typ": "vigil-license+jwt", "kid": "k", "jku": "https://x"}
            ),
            "unexpected header members: ['jku']",
        ),
        (
            lambda t: _token_with_header(t, {"alg": "Ed25519", "typ": "JWT", "kid": "k"}),
            "'typ' must be",
        ),
        (
            lambda t: _token_with_header(t, {"alg": "Ed25519", "typ": "vigil-license+jwt"}),
            "names no signing key",
        ),
        (lambda t: t.rsplit(".", 1)[0] + "." + _b64(b"short"), "not an Ed25519 signature"),
        (
            lambda t: ".".join(
                [t.split(".")[0], _b64(b'{"jti": "a", "jti": "b"}'), t.split(".")[2]]
            ),
            "claims must be a JSON object",
        ),
        (
            lambda t: ".".join([t.split(".")[0], _b64(b'{"jti": "a"}'), t.split(".")[2]]),
            "claim",
        ),
    ],
)
def test_inspection_refuses_malformed_tokens(token, mangle, message):
    with pytest.raises(InvalidLicenseError) as refused:
        inspect_license(mangle(token))
    assert message in str(refused.value)


#### Validity window ####


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (NOW, LicenseStatus.VALID),
        (NOW + timedelta(days=30, seconds=30), LicenseStatus.VALID),  # within the leeway
        (NOW + timedelta(days=31), LicenseStatus.IN_GRACE),
        (NOW + timedelta(days=43, hours=23), LicenseStatus.IN_GRACE),
    ],
)
def test_validity_window(moment, expected):
    assert check_validity_window(_claims(), moment, GRACE, frozenset()) is expected


def test_validity_window_ends_with_the_grace_period():
    with pytest.raises(LicenseExpiredError, match="grace period ended"):
        check_validity_window(_claims(), NOW + timedelta(days=44, seconds=61), GRACE, frozenset())


def test_a_shorter_grace_period_ends_sooner():
    with pytest.raises(LicenseExpiredError):
        check_validity_window(_claims(), NOW + timedelta(days=32), timedelta(days=1), frozenset())


def test_validity_window_starts_at_nbf():
    with pytest.raises(LicenseNotYetValidError):
        check_validity_window(_claims(), NOW - timedelta(days=11), GRACE, frozenset())


def test_revoked_license_is_refused_before_its_dates():
    with pytest.raises(LicenseRevokedError):
        check_validity_window(_claims(), NOW, GRACE, frozenset({"lic-0001"}))


#### Clock ####


def test_clock_set_back_is_refused(home):
    check_clock(home, NOW, advance=True)
    check_clock(home, NOW - timedelta(seconds=30), advance=True)  # within the leeway
    with pytest.raises(ClockSetBackError, match="the clock was set back"):
        check_clock(home, NOW - timedelta(hours=1), advance=True)


def test_status_does_not_move_the_clock_mark(home):
    check_clock(home, NOW, advance=False)
    assert not home.clock_file.exists()


def test_a_corrupt_clock_file_is_not_silently_reset(home):
    home.path.mkdir(parents=True)
    home.clock_file.write_text("{}")
    with pytest.raises(LicenseCheckError, match="corrupt"):
        check_clock(home, NOW, advance=True)


#### Warnings and errors ####


def _verified(status: LicenseStatus, moment: datetime) -> VerifiedLicense:
    claims = _claims()
    return VerifiedLicense(
        claims=claims,
        status=status,
        kid="k",
        algorithm="Ed25519",
        reference_time=moment,
        grace_ends=claims.exp + GRACE,
    )


def test_a_license_in_grace_warns_loudly():
    (warning,) = license_warnings(_verified(LicenseStatus.IN_GRACE, NOW + timedelta(days=32)))
    assert warning.startswith("LICENSE lic-0001 EXPIRED")
    assert "12 days left" in warning


def test_a_license_about_to_expire_reminds_to_renew():
    (reminder,) = license_warnings(_verified(LicenseStatus.VALID, NOW + timedelta(days=27)))
    assert "expires" in reminder
    assert "in 3 days" in reminder
    assert license_warnings(_verified(LicenseStatus.VALID, NOW)) == ()


@pytest.mark.parametrize(
    ("error", "kind", "code"),
    [
        (InvalidLicenseError("x"), LicenseCheckError, ExitCode.LICENSE),
        (LicenseRevokedError("x"), LicenseCheckError, ExitCode.LICENSE),
        (UnsafeBundleError("x"), BundleCheckError, ExitCode.BUNDLE),
        (RepositoryError("x"), BundleCheckError, ExitCode.BUNDLE),
        (SigningKeyError("x"), BadInputError, ExitCode.BAD_INPUT),
    ],
)
def test_licensing_errors_keep_their_exit_codes(error, kind, code):
    converted = engine_error(error)
    assert isinstance(converted, kind)
    assert converted.exit_code == code


#### Status ####


def test_status_of_an_unreadable_license_says_why(home):
    home.trust_dir.mkdir(parents=True)
    home.license_file.write_text("garbage")
    report = describe_license(home, NOW)
    assert (report.status, report.claims) == ("invalid", None)
    assert report.reason == "license token is not a compact JWS"


def test_status_of_a_license_before_keys_arrive_is_unverified(home, token):
    home.trust_dir.mkdir(parents=True)
    home.license_file.write_text(token)
    report = describe_license(home, NOW)
    assert report.status == "unverified"
    assert report.signature_verified is False
    assert report.to_dict()["organisation"] == "Example Chat Ltd"
    assert describe_license(home, NOW + timedelta(days=50)).status == "expired"


#### Settings ####


@pytest.mark.parametrize(("value", "expected"), [(None, 14), (14, 14), (3, 3), (0, 0), (0.5, 0.5)])
def test_grace_period_may_be_shortened(home, value, expected):
    home.path.mkdir()
    if value is not None:
        home.update_config(license_grace_days=value)
    assert home.license_grace() == timedelta(days=expected)


@pytest.mark.parametrize("value", [15, -1, True, "14"])
def test_grace_period_cannot_be_lengthened_or_malformed(home, value):
    home.path.mkdir()
    home.update_config(license_grace_days=value)
    with pytest.raises(BadInputError, match="license_grace_days"):
        home.license_grace()
