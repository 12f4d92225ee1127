"""Engine leases: one test per attack on ``verify_lease``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from licensing.exceptions import InvalidLicenseError, LicenseError
from licensing.keys import generate_private_key, key_id
from licensing.leases import (
    LEASE_TYPE,
    InvalidLeaseError,
    LeaseClaims,
    LeaseExpiredError,
    LeaseNotYetValidError,
    issue_lease,
    verify_lease,
)
from licensing.tokens import issue_license, verify_license

ENGINE = "5f0c7a52-9d0e-4d59-9d3c-3d1f2b7e8a11"
LICENSE = "0b8e2f4c-1111-4222-8333-944455556666"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def signed(signer, header: dict, payload: str) -> str:
    head = b64url(json.dumps(header).encode())
    body = b64url(payload.encode())
    return f"{head}.{body}.{b64url(signer.sign(f'{head}.{body}'.encode()))}"


@pytest.fixture
def make_lease_claims(now):
    def factory(**overrides) -> LeaseClaims:
        values = {
            "iss": "https://portal.example",
            "sub": ENGINE,
            "jti": "act-0001",
            "lic": LICENSE,
            "iat": now - timedelta(hours=1),
            "exp": now + timedelta(days=7),
        }
        values.update(overrides)
        return LeaseClaims(**values)

    return factory


def test_a_lease_verifies_with_the_license_keys(
    license_key, trusted_keys, make_lease_claims, now
) -> None:
    lease = issue_lease(make_lease_claims(), license_key)
    verified = verify_lease(
        lease, trusted_keys, reference_time=now, engine_id=ENGINE, license_id=LICENSE
    )
    assert verified.claims == make_lease_claims()
    assert verified.kid == key_id(license_key)
    assert verified.expires_at == now + timedelta(days=7)
    header = json.loads(base64.urlsafe_b64decode(lease.split(".")[0] + "=="))
    assert header == {"alg": "Ed25519", "typ": LEASE_TYPE, "kid": key_id(license_key)}


def test_lease_errors_are_license_errors_with_exit_code_3() -> None:
    assert issubclass(InvalidLeaseError, LicenseError)
    assert InvalidLeaseError.exit_code == 3


def test_a_lease_signed_by_another_key_is_refused(trusted_keys, make_lease_claims, now) -> None:
    lease = issue_lease(make_lease_claims(), generate_private_key())
    with pytest.raises(InvalidLeaseError, match="unknown key"):
        verify_lease(lease, trusted_keys, reference_time=now)


def test_a_lease_signed_by_another_key_under_a_trusted_kid_is_refused(
    license_key, trusted_keys, make_lease_claims, now
) -> None:
    header = {"alg": "Ed25519", "typ": LEASE_TYPE, "kid": key_id(license_key)}
    forged = signed(generate_private_key(), header, json.dumps(make_lease_claims().to_dict()))
    with pytest.raises(InvalidLeaseError, match="signature"):
        verify_lease(forged, trusted_keys, reference_time=now)


def test_a_tampered_payload_is_refused(license_key, trusted_keys, make_lease_claims, now) -> None:
    head, _body, signature = issue_lease(make_lease_claims(), license_key).split(".")
    other = make_lease_claims(sub="another-engine").to_dict()
    tampered = f"{head}.{b64url(json.dumps(other).encode())}.{signature}"
    with pytest.raises(InvalidLeaseError, match="signature"):
        verify_lease(tampered, trusted_keys, reference_time=now)


def test_a_license_token_is_not_a_lease(license_key, trusted_keys, make_claims, now) -> None:
    token = issue_license(make_claims(), license_key)
    with pytest.raises(InvalidLeaseError, match="typ"):
        verify_lease(token, trusted_keys, reference_time=now)


def test_a_lease_is_not_a_license(license_key, trusted_keys, make_lease_claims, now) -> None:
    lease = issue_lease(make_lease_claims(), license_key)
    with pytest.raises(InvalidLicenseError, match="typ"):
        verify_license(lease, trusted_keys, reference_time=now)


def test_alg_none_is_refused(license_key, trusted_keys, make_lease_claims, now) -> None:
    header = {"alg": "none", "typ": LEASE_TYPE, "kid": key_id(license_key)}
    head = b64url(json.dumps(header).encode())
    body = b64url(json.dumps(make_lease_claims().to_dict()).encode())
    with pytest.raises(InvalidLeaseError):
        verify_lease(f"{head}.{body}.", trusted_keys, reference_time=now)


def test_hmac_with_the_public_key_as_secret_is_refused(
    license_key, trusted_keys, make_lease_claims, now
) -> None:
    header = {"alg": "HS256", "typ": LEASE_TYPE, "kid": key_id(license_key)}
    head = b64url(json.dumps(header).encode())
    body = b64url(json.dumps(make_lease_claims().to_dict()).encode())
    secret = license_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    with pytest.raises(InvalidLeaseError):
        verify_lease(f"{head}.{body}.{b64url(mac)}", trusted_keys, reference_time=now)


def test_a_key_carried_in_the_header_is_refused(
    license_key, trusted_keys, make_lease_claims, now
) -> None:
    attacker = generate_private_key()
    header = {
        "alg": "Ed25519",
        "typ": LEASE_TYPE,
        "kid": key_id(license_key),
        "jwk": {"kty": "OKP", "crv": "Ed25519", "x": "AAAA"},
    }
    forged = signed(attacker, header, json.dumps(make_lease_claims().to_dict()))
    with pytest.raises(InvalidLeaseError, match="header"):
        verify_lease(forged, trusted_keys, reference_time=now)


def test_an_expired_lease_is_refused_without_grace(
    license_key, trusted_keys, make_lease_claims, now
) -> None:
    lease = issue_lease(make_lease_claims(exp=now - timedelta(minutes=2)), license_key)
    with pytest.raises(LeaseExpiredError):
        verify_lease(lease, trusted_keys, reference_time=now)
    # Within the clock-skew leeway it still verifies.
    verify_lease(lease, trusted_keys, reference_time=now - timedelta(minutes=1, seconds=30))


def test_a_lease_from_the_future_is_refused(
    license_key, trusted_keys, make_lease_claims, now
) -> None:
    lease = issue_lease(make_lease_claims(iat=now + timedelta(hours=1)), license_key)
    with pytest.raises(LeaseNotYetValidError):
        verify_lease(lease, trusted_keys, reference_time=now)


def test_a_lease_of_another_engine_is_refused(
    license_key, trusted_keys, make_lease_claims, now
) -> None:
    lease = issue_lease(make_lease_claims(), license_key)
    with pytest.raises(InvalidLeaseError, match="another engine"):
        verify_lease(lease, trusted_keys, reference_time=now, engine_id="someone-else")


def test_a_lease_of_another_license_is_refused(
    license_key, trusted_keys, make_lease_claims, now
) -> None:
    lease = issue_lease(make_lease_claims(), license_key)
    with pytest.raises(InvalidLeaseError, match="another license"):
        verify_lease(lease, trusted_keys, reference_time=now, license_id="other-license")


def test_an_oversized_lease_is_refused_before_decoding(trusted_keys, now) -> None:
    with pytest.raises(InvalidLeaseError, match="larger"):
        verify_lease("a" * 9000, trusted_keys, reference_time=now)


def test_a_lease_without_its_license_claim_is_refused(
    license_key, trusted_keys, make_lease_claims, now
) -> None:
    claims = make_lease_claims().to_dict()
    del claims["lic"]
    header = {"alg": "Ed25519", "typ": LEASE_TYPE, "kid": key_id(license_key)}
    with pytest.raises(InvalidLeaseError, match="lic"):
        verify_lease(
            signed(license_key, header, json.dumps(claims)), trusted_keys, reference_time=now
        )


def test_duplicate_claims_are_refused(license_key, trusted_keys, make_lease_claims, now) -> None:
    claims = json.dumps(make_lease_claims().to_dict())
    duplicated = claims[:-1] + ', "sub": "another-engine"}'
    header = {"alg": "Ed25519", "typ": LEASE_TYPE, "kid": key_id(license_key)}
    with pytest.raises(InvalidLeaseError, match="JSON"):
        verify_lease(signed(license_key, header, duplicated), trusted_keys, reference_time=now)


def test_claims_must_be_well_formed(now) -> None:
    with pytest.raises(ValueError, match="timezone"):
        LeaseClaims(iss="i", sub="s", jti="j", lic="l", iat=now.replace(tzinfo=None), exp=now)
    with pytest.raises(ValueError, match="after exp"):
        LeaseClaims(iss="i", sub="s", jti="j", lic="l", iat=now, exp=now - timedelta(seconds=1))
    with pytest.raises(ValueError, match="lic"):
        LeaseClaims(iss="i", sub="s", jti="j", lic="", iat=now, exp=now)
