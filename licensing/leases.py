# Copyright 2026 Vigil contributors
# SPDX-License-Identifier: Apache-2.0
"""Engine leases: the portal's signed word that an engine holds one of a
license's seats (``max_engines``) until the lease expires.

A lease is a compact JWS signed with the portal's current *license* key, so an
engine verifies it with the license public keys it already holds (the signed
``licensing/keys.json`` target); no new key reaches the engine. Its protected
header is exactly ``{"alg": "Ed25519", "typ": "vigil-lease+jwt", "kid": KID}``
and its payload is the JSON object of ``LeaseClaims``: ``iss`` (portal URL),
``sub`` (engine id), ``jti`` (activation id), ``lic`` (license id), ``iat``,
``exp``.

``verify_lease`` enforces, in this order, and raises on the first failure:

1. Size: the lease is at most ``max_token_bytes`` (checked before decoding).
2. Shape: three base64url segments; the header decodes to JSON.
3. Header: ``alg`` is ``Ed25519`` (or ``EdDSA`` on read), never ``none`` or
   HMAC; ``typ`` is ``vigil-lease+jwt``, so a license token is never taken
   for a lease (and ``licensing.tokens`` refuses a lease as a license); ``kid``
   names a trusted key; no other header member (no ``jwk``, ``jku``...).
4. Signature: Ed25519 over the received segments with the key named by ``kid``.
5. Claims: every claim of ``LeaseClaims`` present with its type (no duplicate
   JSON keys); ``iat <= exp``.
6. Binding: when the caller names its engine id or license id, ``sub`` and
   ``lic`` must equal them (a lease copied from another engine is refused).
7. Validity window, against one clock reading (read once, or given): not
   before ``iat - leeway``; expired from ``exp + leeway`` on. There is no
   grace period: an engine renews its lease well before ``exp``.

Errors are ``LeaseError`` subclasses of ``LicenseError`` (exit code 3).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey

from licensing._util import canonical_json, isoformat_z, require_aware, utc_now
from licensing.config import DEFAULT_CONFIG, LicensingConfig
from licensing.exceptions import LicenseError, SigningKeyError
from licensing.keys import key_id
from licensing.tokens import (
    SIGNING_ALGORITHM,
    _from_numeric_date,
    _LicenseRegistry,
    _string_claim,
    _to_numeric_date,
    verify_signed_document,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

LEASE_TYPE: Final = "vigil-lease+jwt"


class LeaseError(LicenseError):
    """The lease cannot prove that this engine holds a seat."""


class InvalidLeaseError(LeaseError):
    """The lease is malformed, too large, wrongly signed, of the wrong ``typ``,
    signed by an unknown key, or issued to another engine or license.
    """


class LeaseNotYetValidError(LeaseError):
    """The reference time is before ``iat`` beyond the leeway."""


class LeaseExpiredError(LeaseError):
    """The reference time is past ``exp`` plus the leeway: renew the lease."""


@dataclass(frozen=True)
class LeaseClaims:
    """The claims of a lease. Times are timezone-aware, in whole seconds."""

    iss: str
    sub: str
    jti: str
    lic: str
    iat: datetime
    exp: datetime

    def __post_init__(self) -> None:
        for name in ("iss", "sub", "jti", "lic"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{name} must be a non-empty string")
        for name in ("iat", "exp"):
            moment = require_aware(getattr(self, name), name).replace(microsecond=0)
            object.__setattr__(self, name, moment)
        if self.iat > self.exp:
            raise ValueError("iat must not be after exp")

    @property
    def engine_id(self) -> str:
        return self.sub

    @property
    def activation_id(self) -> str:
        return self.jti

    @property
    def license_id(self) -> str:
        return self.lic

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready claims with NumericDate times."""
        return {
            "iss": self.iss,
            "sub": self.sub,
            "jti": self.jti,
            "lic": self.lic,
            "iat": _to_numeric_date(self.iat),
            "exp": _to_numeric_date(self.exp),
        }

    @classmethod
    def from_dict(cls, claims: Mapping[str, Any]) -> LeaseClaims:
        """Parse claims strictly; unknown claims are ignored.

        Raises:
            InvalidLeaseError: A claim is missing or has the wrong type.
        """
        try:
            return cls(
                iss=_string_claim(claims, "iss"),
                sub=_string_claim(claims, "sub"),
                jti=_string_claim(claims, "jti"),
                lic=_string_claim(claims, "lic"),
                iat=_from_numeric_date(claims.get("iat"), "iat"),
                exp=_from_numeric_date(claims.get("exp"), "exp"),
            )
        except (ValueError, LicenseError) as error:
            raise InvalidLeaseError(f"invalid lease claims: {error}") from None


@dataclass(frozen=True)
class VerifiedLease:
    """A lease that passed every check of ``verify_lease``."""

    claims: LeaseClaims
    kid: str
    algorithm: str
    reference_time: datetime

    @property
    def expires_at(self) -> datetime:
        return self.claims.exp


def issue_lease(claims: LeaseClaims, signing_key: Ed25519PrivateKey) -> str:
    """Sign ``claims`` as a compact JWS lease, naming the key with ``kid``.

    Raises:
        SigningKeyError: ``signing_key`` cannot sign (not Ed25519).
    """
    header = {"alg": SIGNING_ALGORITHM, "typ": LEASE_TYPE, "kid": key_id(signing_key)}
    registry = _LicenseRegistry(DEFAULT_CONFIG)
    try:
        return jws.serialize_compact(
            header,
            canonical_json(claims.to_dict()),
            OKPKey.import_key(signing_key),
            registry=registry,
        )
    except JoseError as error:
        raise SigningKeyError(f"cannot sign the lease: {error}") from None


def _decode_and_check_signature(
    token: str, trusted_keys: Mapping[str, Ed25519PublicKey], config: LicensingConfig
) -> tuple[LeaseClaims, str, str]:
    payload, kid, algorithm = verify_signed_document(
        token,
        trusted_keys,
        _LicenseRegistry(config),
        typ=LEASE_TYPE,
        noun="lease",
        error=InvalidLeaseError,
    )
    return LeaseClaims.from_dict(payload), kid, algorithm


def verify_lease(
    token: str,
    trusted_keys: Mapping[str, Ed25519PublicKey],
    *,
    reference_time: datetime | None = None,
    leeway: timedelta | None = None,
    engine_id: str | None = None,
    license_id: str | None = None,
    config: LicensingConfig = DEFAULT_CONFIG,
) -> VerifiedLease:
    """Verify a lease; see the module docstring for every rule.

    Args:
        token: The compact JWS (surrounding whitespace is ignored).
        trusted_keys: Key id to license public key (``licensing/keys.json``).
        reference_time: The one clock reading for this verification; read now
            if not given.
        leeway: Clock-skew tolerance; ``config.leeway`` if not given.
        engine_id: If given, the lease must have been issued to this engine.
        license_id: If given, the lease must belong to this license.
        config: Size limits.

    Raises:
        InvalidLeaseError, LeaseNotYetValidError, LeaseExpiredError
    """
    now = utc_now() if reference_time is None else require_aware(reference_time, "reference_time")
    leeway = config.leeway if leeway is None else leeway

    token = token.strip()
    if len(token) > config.max_token_bytes:
        raise InvalidLeaseError(f"lease is larger than {config.max_token_bytes} bytes")

    claims, kid, algorithm = _decode_and_check_signature(token, trusted_keys, config)

    if engine_id is not None and claims.sub != engine_id:
        raise InvalidLeaseError("lease was issued to another engine")
    if license_id is not None and claims.lic != license_id:
        raise InvalidLeaseError("lease belongs to another license")
    if now < claims.iat - leeway:
        raise LeaseNotYetValidError(f"lease is not valid before {isoformat_z(claims.iat)}")
    if now >= claims.exp + leeway:
        raise LeaseExpiredError(f"lease expired at {isoformat_z(claims.exp)}")
    return VerifiedLease(claims=claims, kid=kid, algorithm=algorithm, reference_time=now)
