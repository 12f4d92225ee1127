# Copyright 2026 Vigil contributors
# SPDX-License-Identifier: Apache-2.0
"""License tokens (SPEC §7): issuing and verifying compact JWS with joserfc.

A license token is a compact JWS whose protected header is exactly
``{"alg": "Ed25519", "typ": "vigil-license+jwt", "kid": KID}`` and whose
payload is the JSON object of ``LicenseClaims``.

``verify_license`` enforces, in this order, and raises on the first failure:

1. Size: the token is at most ``max_token_bytes`` (checked before decoding).
2. Shape: three base64url segments; the header decodes to JSON.
3. Header: ``alg`` is ``Ed25519`` (RFC 9864 name) or ``EdDSA`` (its older
   name, accepted on read only). ``none``, every HMAC (``HS*``) and every
   other algorithm is refused before any key is touched, so a token "signed"
   with the public key as an HMAC secret can never verify. ``typ`` is
   ``vigil-license+jwt``. ``kid`` names one of the caller's trusted keys; a
   key or key URL carried inside the token (``jwk``, ``jku``, ``x5u``...) is
   never used: any header member other than ``alg``, ``typ``, ``kid`` is
   refused.
4. Signature: Ed25519 over the exact received header and payload segments,
   with the trusted key named by ``kid``.
5. Claims: every claim of ``LicenseClaims`` is present with its type; no
   duplicate JSON keys; ``nbf <= exp`` and ``iat <= exp``.
6. Clock: the reference time (read once, or given) is not earlier than the
   high-water mark minus the leeway, else ``ClockRollbackError``.
7. Revocation: ``jti`` is not in the revocation list.
8. Validity window: not before ``max(nbf, iat) - leeway``; before
   ``exp + leeway`` the license is ``valid``; before ``exp + grace`` it is
   ``in_grace`` (scoring continues, callers warn loudly); later it is expired.

``HighWaterMark`` persists the latest reference time seen so that setting the
clock back cannot revive an expired license.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwa import JWSAlgModel
from joserfc.jwk import OKPKey
from joserfc.jws import JWSRegistry

from licensing._util import (
    atomic_write,
    canonical_json,
    isoformat_z,
    parse_isoformat,
    require_aware,
    strict_json_loads,
    utc_now,
)
from licensing.config import DEFAULT_CONFIG, LicensingConfig
from licensing.exceptions import (
    ClockRollbackError,
    InvalidLicenseError,
    LicenseError,
    LicenseExpiredError,
    LicenseNotYetValidError,
    LicenseRevokedError,
    SigningKeyError,
)
from licensing.keys import key_id

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping
    from pathlib import Path

logger = logging.getLogger(__name__)

LICENSE_TYPE: Final = "vigil-license+jwt"
SIGNING_ALGORITHM: Final = "Ed25519"
ACCEPTED_ALGORITHMS: Final = frozenset({"Ed25519", "EdDSA"})
_ALLOWED_HEADER_MEMBERS: Final = frozenset({"alg", "typ", "kid"})

# NumericDate bounds: after 1970 and before year 9999, so datetime never overflows.
_MAX_NUMERIC_DATE: Final = 253_402_300_799


class _Ed25519Signature(JWSAlgModel):
    """EdDSA restricted to the Ed25519 curve, under one of its JOSE names.

    joserfc registers ``EdDSA`` with a deprecation warning and accepts Ed448
    keys for it; licenses only ever use Ed25519, so both names map to this
    curve-pinned model in a registry private to this module.
    """

    key_type = "OKP"
    recommended = True

    def __init__(self, name: str) -> None:
        self.name = name
        self.description = f"EdDSA with Ed25519 (JOSE name {name!r})"

    def check_key(self, key: Any) -> None:
        super().check_key(key)
        if not isinstance(key, OKPKey) or key.curve_name != "Ed25519":
            raise InvalidLicenseError("license keys must be Ed25519")

    def sign(self, msg: bytes, key: Any) -> bytes:
        op_key = key.get_op_key("sign")
        if not isinstance(op_key, Ed25519PrivateKey):
            raise SigningKeyError("license signing key must be an Ed25519 private key")
        return op_key.sign(msg)

    def verify(self, msg: bytes, sig: bytes, key: Any) -> bool:
        op_key = key.get_op_key("verify")
        if not isinstance(op_key, Ed25519PublicKey):
            return False
        try:
            op_key.verify(sig, msg)
        except InvalidSignature:
            return False
        return True


class _LicenseRegistry(JWSRegistry):
    """A JWS registry that knows only the Ed25519 algorithm models above.

    The algorithm table is set per instance so joserfc's global registry is
    left untouched for other users in the same process.
    """

    def __init__(self, config: LicensingConfig) -> None:
        super().__init__(algorithms=sorted(ACCEPTED_ALGORITHMS), strict_check_header=True)
        self.algorithms = {name: _Ed25519Signature(name) for name in ACCEPTED_ALGORITHMS}
        self.max_header_length = 512
        self.max_signature_length = 128
        self.max_payload_length = config.max_token_bytes


class LicenseStatus(StrEnum):
    VALID = "valid"
    IN_GRACE = "in_grace"


def _to_numeric_date(moment: datetime) -> int:
    return int(moment.astimezone(UTC).timestamp())


def _from_numeric_date(value: object, name: str) -> datetime:
    if type(value) is not int or not 0 <= value <= _MAX_NUMERIC_DATE:
        raise InvalidLicenseError(f"claim {name!r} must be an integer NumericDate")
    return datetime.fromtimestamp(value, UTC)


def _string_claim(claims: Mapping[str, Any], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidLicenseError(f"claim {name!r} must be a non-empty string")
    return value


def _string_list_claim(claims: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = claims.get(name)
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise InvalidLicenseError(f"claim {name!r} must be a list of non-empty strings")
    return tuple(value)


@dataclass(frozen=True)
class LicenseClaims:
    """The claims of a license token (SPEC §7).

    Times are timezone-aware and truncated to whole seconds, as JWT
    NumericDates are.
    """

    iss: str
    sub: str
    jti: str
    iat: datetime
    nbf: datetime
    exp: datetime
    org_name: str
    channels: tuple[str, ...]
    max_engines: int
    features: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("iss", "sub", "jti", "org_name"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{name} must be a non-empty string")
        for name in ("iat", "nbf", "exp"):
            moment = require_aware(getattr(self, name), name).replace(microsecond=0)
            object.__setattr__(self, name, moment)
        for name in ("channels", "features"):
            values = tuple(getattr(self, name))
            if not all(isinstance(item, str) and item for item in values):
                raise ValueError(f"{name} must hold non-empty strings")
            object.__setattr__(self, name, values)
        if not self.channels:
            raise ValueError("a license must grant at least one channel")
        if type(self.max_engines) is not int or self.max_engines < 1:
            raise ValueError("max_engines must be a positive integer")
        if self.nbf > self.exp or self.iat > self.exp:
            raise ValueError("nbf and iat must not be after exp")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready claims with NumericDate times."""
        return {
            "iss": self.iss,
            "sub": self.sub,
            "jti": self.jti,
            "iat": _to_numeric_date(self.iat),
            "nbf": _to_numeric_date(self.nbf),
            "exp": _to_numeric_date(self.exp),
            "org_name": self.org_name,
            "channels": list(self.channels),
            "max_engines": self.max_engines,
            "features": list(self.features),
        }

    @classmethod
    def from_dict(cls, claims: Mapping[str, Any]) -> LicenseClaims:
        """Parse claims strictly; unknown claims are ignored.

        Raises:
            InvalidLicenseError: A claim is missing or has the wrong type.
        """
        max_engines = claims.get("max_engines")
        if type(max_engines) is not int:
            raise InvalidLicenseError("claim 'max_engines' must be an integer")
        try:
            return cls(
                iss=_string_claim(claims, "iss"),
                sub=_string_claim(claims, "sub"),
                jti=_string_claim(claims, "jti"),
                iat=_from_numeric_date(claims.get("iat"), "iat"),
                nbf=_from_numeric_date(claims.get("nbf"), "nbf"),
                exp=_from_numeric_date(claims.get("exp"), "exp"),
                org_name=_string_claim(claims, "org_name"),
                channels=_string_list_claim(claims, "channels"),
                max_engines=max_engines,
                features=_string_list_claim(claims, "features"),
            )
        except ValueError as error:
            raise InvalidLicenseError(f"invalid claims: {error}") from None


@dataclass(frozen=True)
class VerifiedLicense:
    """A license that passed every check of ``verify_license``.

    ``status`` is ``in_grace`` when the license expired less than the grace
    period ago: the engine still scores but must warn loudly.
    """

    claims: LicenseClaims
    status: LicenseStatus
    kid: str
    algorithm: str
    reference_time: datetime
    grace_ends: datetime

    @property
    def in_grace(self) -> bool:
        return self.status is LicenseStatus.IN_GRACE


def issue_license(
    claims: LicenseClaims,
    signing_key: Ed25519PrivateKey,
    *,
    kid: str | None = None,
) -> str:
    """Sign ``claims`` as a compact JWS license token.

    ``kid`` defaults to ``key_id(signing_key)``; if given it must equal it, so
    a token never names a key other than the one that signed it.

    Raises:
        SigningKeyError: ``kid`` does not name ``signing_key``.
    """
    actual_kid = key_id(signing_key)
    if kid is not None and kid != actual_kid:
        raise SigningKeyError("kid does not match the signing key")
    header = {"alg": SIGNING_ALGORITHM, "typ": LICENSE_TYPE, "kid": actual_kid}
    registry = _LicenseRegistry(DEFAULT_CONFIG)
    return jws.serialize_compact(
        header, canonical_json(claims.to_dict()), OKPKey.import_key(signing_key), registry=registry
    )


def verify_signed_document(
    token: str,
    trusted_keys: Mapping[str, Ed25519PublicKey],
    registry: _LicenseRegistry,
    *,
    typ: str,
    noun: str,
    error: type[LicenseError],
    jws_noun: str | None = None,
) -> tuple[dict[str, Any], str, str]:
    """Header, key and signature checks shared by license tokens and leases.

    Returns the claims object, the key id and the algorithm; every refusal is ``error``
    with a message naming ``noun`` (``jws_noun`` for a token that is not a JWS at all).
    """
    try:
        compact = jws.extract_compact(token.encode("ascii"), registry=registry)
    except (JoseError, ValueError, UnicodeError):
        raise error(f"{jws_noun or noun} is not a compact JWS") from None

    header = compact.headers()
    algorithm = header.get("alg")
    if algorithm not in ACCEPTED_ALGORITHMS:
        raise error(f"{noun} algorithm {algorithm!r} is not accepted")
    unexpected = set(header) - _ALLOWED_HEADER_MEMBERS
    if unexpected:
        raise error(f"unexpected header members: {sorted(unexpected)}")
    if header.get("typ") != typ:
        raise error(f"{noun} 'typ' must be {typ!r}")
    kid = header.get("kid")
    if not isinstance(kid, str) or kid not in trusted_keys:
        raise error(f"{noun} is signed by an unknown key")

    try:
        valid = jws.validate_compact(
            compact, OKPKey.import_key(trusted_keys[kid]), registry=registry
        )
    except (JoseError, LicenseError):
        valid = False
    if not valid:
        raise error(f"{noun} signature is invalid")

    try:
        payload = strict_json_loads(compact.payload)
    except (ValueError, UnicodeError):
        raise error(f"{noun} claims are not a JSON object") from None
    if not isinstance(payload, dict):
        raise error(f"{noun} claims are not a JSON object")
    return payload, kid, str(algorithm)


def _decode_and_check_signature(
    token: str,
    trusted_keys: Mapping[str, Ed25519PublicKey],
    registry: _LicenseRegistry,
) -> tuple[LicenseClaims, str, str]:
    payload, kid, algorithm = verify_signed_document(
        token,
        trusted_keys,
        registry,
        typ=LICENSE_TYPE,
        noun="license",
        jws_noun="license token",
        error=InvalidLicenseError,
    )
    return LicenseClaims.from_dict(payload), kid, algorithm


def verify_license(
    token: str,
    trusted_keys: Mapping[str, Ed25519PublicKey],
    *,
    reference_time: datetime | None = None,
    leeway: timedelta | None = None,
    grace: timedelta | None = None,
    revoked: Collection[str] = (),
    high_water_mark: datetime | None = None,
    config: LicensingConfig = DEFAULT_CONFIG,
) -> VerifiedLicense:
    """Verify a license token; see the module docstring for every rule.

    Args:
        token: The compact JWS (surrounding whitespace is ignored).
        trusted_keys: Key id to license public key, from the signed
            ``licensing/keys.json`` target (or the portal's own keys).
        reference_time: The one clock reading for this verification; read now
            if not given.
        leeway: Clock-skew tolerance; ``config.leeway`` if not given.
        grace: Period after ``exp`` with status ``in_grace``; ``config.grace``
            if not given.
        revoked: Revoked license ids, from the signed revocation list.
        high_water_mark: Latest reference time previously observed.
        config: Size limits.

    Raises:
        InvalidLicenseError, ClockRollbackError, LicenseRevokedError,
        LicenseNotYetValidError, LicenseExpiredError: The license cannot score.
    """
    if reference_time is None:
        now = utc_now()
    else:
        now = require_aware(reference_time, "reference_time")
    leeway = config.leeway if leeway is None else leeway
    grace = config.grace if grace is None else grace

    token = token.strip()
    if len(token) > config.max_token_bytes:
        raise InvalidLicenseError(f"license token is larger than {config.max_token_bytes} bytes")

    claims, kid, algorithm = _decode_and_check_signature(
        token, trusted_keys, _LicenseRegistry(config)
    )

    if high_water_mark is not None:
        mark = require_aware(high_water_mark, "high_water_mark")
        if now < mark - leeway:
            raise ClockRollbackError(
                f"clock reads {isoformat_z(now)}, earlier than {isoformat_z(mark)} "
                "already observed: the clock was set back"
            )

    if claims.jti in revoked:
        raise LicenseRevokedError(f"license {claims.jti} has been revoked")

    starts = max(claims.nbf, claims.iat)
    if now < starts - leeway:
        raise LicenseNotYetValidError(f"license is not valid before {isoformat_z(starts)}")

    grace_ends = claims.exp + max(grace, leeway)
    if now < claims.exp + leeway:
        status = LicenseStatus.VALID
    elif now < grace_ends:
        status = LicenseStatus.IN_GRACE
        logger.warning(
            "license %s expired at %s; grace period ends %s",
            claims.jti,
            isoformat_z(claims.exp),
            isoformat_z(grace_ends),
        )
    else:
        raise LicenseExpiredError(
            f"license expired at {isoformat_z(claims.exp)} and its grace period "
            f"ended {isoformat_z(grace_ends)}"
        )

    return VerifiedLicense(
        claims=claims,
        status=status,
        kid=kid,
        algorithm=algorithm,
        reference_time=now,
        grace_ends=grace_ends,
    )


@dataclass(frozen=True)
class HighWaterMark:
    """The latest trusted time observed, persisted in a small JSON file.

    Usage by the engine, once per run::

        mark = HighWaterMark(home / "clock.json")
        now = datetime.now(UTC)
        license = verify_license(token, keys, reference_time=now,
                                 high_water_mark=mark.load())
        mark.advance(now)

    The file is replaced atomically. A corrupt file raises ``LicenseError``
    rather than silently resetting the mark (which would defeat its purpose).
    """

    path: Path

    def load(self) -> datetime | None:
        """The stored mark, or ``None`` if nothing was observed yet."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            document = strict_json_loads(data[:4096])
            mark = parse_isoformat(document["high_water_mark"])
        except (ValueError, KeyError, TypeError, UnicodeError):
            raise LicenseError(f"clock state file {self.path} is corrupt") from None
        return mark

    def advance(self, observed: datetime) -> datetime:
        """Record ``observed`` if it is later than the stored mark; return the mark."""
        observed = require_aware(observed, "observed").replace(microsecond=0)
        current = self.load()
        if current is not None and current >= observed:
            return current
        atomic_write(self.path, canonical_json({"high_water_mark": isoformat_z(observed)}))
        return observed
