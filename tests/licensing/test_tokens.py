"""License tokens: one test per attack on ``verify_license``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from licensing.exceptions import (
    ClockRollbackError,
    InvalidLicenseError,
    LicenseError,
    LicenseExpiredError,
    LicenseNotYetValidError,
    LicenseRevokedError,
    SigningKeyError,
)
from licensing.keys import generate_private_key, key_id
from licensing.tokens import (
    LICENSE_TYPE,
    HighWaterMark,
    LicenseClaims,
    LicenseStatus,
    issue_license,
    verify_license,
)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def forge(header: dict, claims: dict, signature: bytes = b"") -> str:
    head = b64url(json.dumps(header).encode())
    body = b64url(json.dumps(claims).encode())
    return f"{head}.{body}.{b64url(signature)}"


def signed_token(signer, claims: dict | str, **header_overrides) -> str:
    """A token signed with Ed25519 by ``signer`` over an arbitrary header and payload."""
    header = {"alg": "Ed25519", "typ": LICENSE_TYPE, "kid": key_id(signer), **header_overrides}
    payload = claims if isinstance(claims, str) else json.dumps(claims)
    head = b64url(json.dumps(header).encode())
    body = b64url(payload.encode())
    signature = signer.sign(f"{head}.{body}".encode())
    return f"{head}.{body}.{b64url(signature)}"


def segments(token: str) -> tuple[dict, dict, str]:
    head, body, signature = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return (
        json.loads(base64.urlsafe_b64decode(pad(head))),
        json.loads(base64.urlsafe_b64decode(pad(body))),
        signature,
    )


def test_issued_license_verifies_with_its_claims(license_key, trusted_keys, make_claims, now):
    claims = make_claims()
    verified = verify_license(issue_license(claims, license_key), trusted_keys, reference_time=now)
    assert verified.claims == claims
    assert verified.status is LicenseStatus.VALID
    assert verified.kid == key_id(license_key)


def test_header_uses_rfc9864_ed25519_name_and_license_type(license_key, make_claims):
    header, _, _ = segments(issue_license(make_claims(), license_key))
    assert header == {"alg": "Ed25519", "typ": LICENSE_TYPE, "kid": key_id(license_key)}


def test_eddsa_name_is_accepted_on_read(license_key, trusted_keys, make_claims, now):
    claims = make_claims()
    token = signed_token(license_key, claims.to_dict(), alg="EdDSA")
    verified = verify_license(token, trusted_keys, reference_time=now)
    assert verified.algorithm == "EdDSA"
    assert verified.claims == claims


def test_token_signed_by_foreign_key_is_rejected(trusted_keys, make_claims, now):
    foreign = generate_private_key()
    token = issue_license(make_claims(), foreign)
    with pytest.raises(InvalidLicenseError, match="unknown key"):
        verify_license(token, trusted_keys, reference_time=now)


def test_foreign_signature_under_trusted_kid_is_rejected(
    license_key, trusted_keys, make_claims, now
):
    token = signed_token(generate_private_key(), make_claims().to_dict(), kid=key_id(license_key))
    with pytest.raises(InvalidLicenseError, match="signature"):
        verify_license(token, trusted_keys, reference_time=now)


def test_alg_none_is_rejected(license_key, trusted_keys, make_claims, now):
    header = {"alg": "none", "typ": LICENSE_TYPE, "kid": key_id(license_key)}
    token = forge(header, make_claims().to_dict())
    with pytest.raises(InvalidLicenseError, match="algorithm"):
        verify_license(token, trusted_keys, reference_time=now)


@pytest.mark.parametrize(
    "public_secret",
    [
        lambda key: key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw),
        lambda key: key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo),
    ],
    ids=["raw", "pem"],
)
def test_hs256_signed_with_public_key_is_rejected(
    license_key, trusted_keys, make_claims, now, public_secret
):
    # The classic key-confusion attack: HMAC "signed" with the public key.
    header = {"alg": "HS256", "typ": LICENSE_TYPE, "kid": key_id(license_key)}
    head = b64url(json.dumps(header).encode())
    body = b64url(json.dumps(make_claims(max_engines=1000).to_dict()).encode())
    mac = hmac.new(public_secret(license_key), f"{head}.{body}".encode(), hashlib.sha256)
    token = f"{head}.{body}.{b64url(mac.digest())}"
    with pytest.raises(InvalidLicenseError, match="algorithm"):
        verify_license(token, trusted_keys, reference_time=now)


@pytest.mark.parametrize("alg", ["RS256", "ES256", "PS256", "Ed448", "HS512", ""])
def test_other_algorithms_are_rejected(license_key, trusted_keys, make_claims, now, alg):
    header = {"alg": alg, "typ": LICENSE_TYPE, "kid": key_id(license_key)}
    token = forge(header, make_claims().to_dict(), b"x" * 64)
    with pytest.raises(InvalidLicenseError):
        verify_license(token, trusted_keys, reference_time=now)


def test_wrong_typ_is_rejected(license_key, trusted_keys, make_claims, now):
    token = signed_token(license_key, make_claims().to_dict(), typ="JWT")
    with pytest.raises(InvalidLicenseError, match="typ"):
        verify_license(token, trusted_keys, reference_time=now)


def test_key_embedded_in_header_is_never_used(license_key, trusted_keys, make_claims, now):
    attacker = generate_private_key()
    jwk = {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": b64url(attacker.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)),
    }
    token = signed_token(attacker, make_claims().to_dict(), kid=key_id(license_key), jwk=jwk)
    with pytest.raises(InvalidLicenseError, match="unexpected header"):
        verify_license(token, trusted_keys, reference_time=now)


def test_altered_claims(license_key, trusted_keys, make_claims, now):
    head, _, signature = issue_license(make_claims(), license_key).split(".")
    altered = b64url(json.dumps(make_claims(max_engines=1000).to_dict()).encode())
    with pytest.raises(InvalidLicenseError, match="signature"):
        verify_license(f"{head}.{altered}.{signature}", trusted_keys, reference_time=now)


@pytest.mark.parametrize(
    "change",
    [
        {"max_engines": "3"},
        {"max_engines": True},
        {"channels": "stable"},
        {"exp": 1.5e9},
        {"exp": "2030-01-01"},
        {"jti": ""},
        {"sub": None},
    ],
)
def test_ill_typed_claims_are_rejected(license_key, trusted_keys, make_claims, now, change):
    token = signed_token(license_key, {**make_claims().to_dict(), **change})
    with pytest.raises(InvalidLicenseError, match="claim"):
        verify_license(token, trusted_keys, reference_time=now)


def test_missing_claim_is_rejected(license_key, trusted_keys, make_claims, now):
    claims = make_claims().to_dict()
    del claims["exp"]
    with pytest.raises(InvalidLicenseError, match="exp"):
        verify_license(signed_token(license_key, claims), trusted_keys, reference_time=now)


def test_duplicate_claim_keys_are_rejected(license_key, trusted_keys, make_claims, now):
    text = json.dumps(make_claims().to_dict())[:-1] + ', "max_engines": 1000}'
    with pytest.raises(InvalidLicenseError):
        verify_license(signed_token(license_key, text), trusted_keys, reference_time=now)


def test_oversized_token_is_rejected_before_parsing(trusted_keys, now):
    with pytest.raises(InvalidLicenseError, match="larger than"):
        verify_license("a" * 10_000 + ".b.c", trusted_keys, reference_time=now)


@pytest.mark.parametrize("token", ["", "abc", "a.b", "a.b.c.d", "é.é.é", "....."])
def test_malformed_tokens_are_rejected(trusted_keys, now, token):
    with pytest.raises(InvalidLicenseError):
        verify_license(token, trusted_keys, reference_time=now)


def test_expired_within_grace_is_allowed_with_status_in_grace(
    license_key, trusted_keys, make_claims, now
):
    token = issue_license(make_claims(exp=now - timedelta(days=3)), license_key)
    verified = verify_license(token, trusted_keys, reference_time=now)
    assert verified.status is LicenseStatus.IN_GRACE
    assert verified.in_grace


def test_expired_beyond_grace_is_rejected(license_key, trusted_keys, make_claims, now):
    token = issue_license(make_claims(exp=now - timedelta(days=15)), license_key)
    with pytest.raises(LicenseExpiredError):
        verify_license(token, trusted_keys, reference_time=now)


def test_expired_with_no_grace_is_rejected(license_key, trusted_keys, make_claims, now):
    token = issue_license(make_claims(exp=now - timedelta(hours=1)), license_key)
    with pytest.raises(LicenseExpiredError):
        verify_license(token, trusted_keys, reference_time=now, grace=timedelta(0))


def test_expiry_within_leeway_is_still_valid(license_key, trusted_keys, make_claims, now):
    token = issue_license(make_claims(exp=now - timedelta(seconds=30)), license_key)
    verified = verify_license(token, trusted_keys, reference_time=now)
    assert verified.status is LicenseStatus.VALID


def test_not_yet_valid(license_key, trusted_keys, make_claims, now):
    token = issue_license(
        make_claims(iat=now, nbf=now + timedelta(days=2), exp=now + timedelta(days=30)),
        license_key,
    )
    with pytest.raises(LicenseNotYetValidError):
        verify_license(token, trusted_keys, reference_time=now)


def test_not_before_within_leeway_is_valid(license_key, trusted_keys, make_claims, now):
    token = issue_license(
        make_claims(iat=now, nbf=now + timedelta(seconds=30)),
        license_key,
    )
    assert verify_license(token, trusted_keys, reference_time=now).status is LicenseStatus.VALID


def test_revoked(license_key, trusted_keys, make_claims, now):
    token = issue_license(make_claims(jti="lic-0007"), license_key)
    with pytest.raises(LicenseRevokedError):
        verify_license(token, trusted_keys, reference_time=now, revoked={"lic-0007"})


def test_clock_set_back(license_key, trusted_keys, make_claims, now):
    token = issue_license(make_claims(exp=now + timedelta(days=1)), license_key)
    with pytest.raises(ClockRollbackError):
        verify_license(
            token,
            trusted_keys,
            reference_time=now,
            high_water_mark=now + timedelta(days=20),
        )


def test_clock_behind_high_water_mark_within_leeway_is_accepted(
    license_key, trusted_keys, make_claims, now
):
    token = issue_license(make_claims(), license_key)
    verified = verify_license(
        token, trusted_keys, reference_time=now, high_water_mark=now + timedelta(seconds=30)
    )
    assert verified.status is LicenseStatus.VALID


def test_high_water_mark_persists_and_only_advances(tmp_path, now):
    mark = HighWaterMark(tmp_path / "state" / "clock.json")
    assert mark.load() is None
    assert mark.advance(now) == now
    assert mark.advance(now - timedelta(days=1)) == now
    assert HighWaterMark(mark.path).load() == now
    later = now + timedelta(hours=1)
    assert mark.advance(later) == later
    assert mark.load() == later


def test_high_water_mark_stops_a_set_back_clock_across_runs(
    tmp_path, license_key, trusted_keys, make_claims, now
):
    mark = HighWaterMark(tmp_path / "clock.json")
    token = issue_license(make_claims(exp=now), license_key)
    late = now + timedelta(days=30)
    with pytest.raises(LicenseExpiredError):
        verify_license(token, trusted_keys, reference_time=late, high_water_mark=mark.load())
    mark.advance(late)
    with pytest.raises(ClockRollbackError):
        verify_license(token, trusted_keys, reference_time=now, high_water_mark=mark.load())


def test_corrupt_high_water_mark_is_an_error_not_a_reset(tmp_path):
    path = tmp_path / "clock.json"
    path.write_text("{not json")
    with pytest.raises(LicenseError, match="corrupt"):
        HighWaterMark(path).load()


def test_claims_round_trip_through_dict(make_claims):
    claims = make_claims()
    assert LicenseClaims.from_dict(claims.to_dict()) == claims


def test_issue_refuses_a_kid_of_another_key(license_key, make_claims):
    with pytest.raises(SigningKeyError):
        issue_license(make_claims(), license_key, kid="someone-else")


def test_license_errors_carry_exit_code_3():
    for error in (
        InvalidLicenseError,
        LicenseExpiredError,
        LicenseNotYetValidError,
        LicenseRevokedError,
        ClockRollbackError,
    ):
        assert error.exit_code == 3
