"""What the engine trusts, and the license checks it runs before it scores (SPEC §1, §4, §7).

The engine trusts exactly two things given to it out of band at ``init``: the portal's TUF
root metadata and its license token. Everything else is derived from them:

- The trust root must parse as TUF root metadata signed by a threshold of its own root
  keys. Newer roots are accepted only through the signed root chain (python-tuf, while an
  export is verified); the newest verified root then becomes the stored trust root.
- The license public keys reach the engine only as the signed target ``licensing/keys.json``
  of an export verified against the trust root; the revocation list likewise. They are
  stored as verified and parsed again (strictly) on every run. A key set or revocation
  list never replaces a newer one.
- Before any keys are stored (``init`` before the first ``install``) a license can only be
  checked for size, shape, header (``alg``/``typ``/``kid``), claims, revocation and time;
  it is reported as ``unverified``. It cannot score then: nothing is installed yet, and
  ``install`` verifies the signature before it installs anything.
- The clock is read once per command and that one reading is used for every check. The
  latest reading is kept in ``clock.json`` (``licensing.tokens.HighWaterMark``); a reading
  earlier than it (minus the leeway) means the clock was set back to keep an expired
  license alive, and the engine refuses to score.
- Past ``exp`` a license scores for the grace period (config ``license_grace_days``, at most
  and by default 14 days) with a loud warning on every run; beyond it, it does not.
- The license's ``channels`` must include the channel of the installed bundle.
- A license the portal answered as revoked or suspended (``online_state``'s
  ``trust/portal-denial.json``, written by ``update``) does not score; another license
  clears the record at ``init``. The record can only refuse, never grant.

Every failure becomes one ``VigilError`` with the SPEC §6 exit code: 3 for the license,
4 for the trust root, bundles and update metadata.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from tuf.api.exceptions import RepositoryError as TufRepositoryError

# tuf.api.metadata re-exports these payload classes without ``__all__``.
from tuf.api.metadata import Metadata, Root  # type: ignore[attr-defined]

from licensing.config import DEFAULT_CONFIG
from licensing.exceptions import (
    ClockRollbackError,
    InvalidLicenseError,
    LicenseError,
    LicenseExpiredError,
    LicenseNotYetValidError,
    LicenseRevokedError,
    LicensingError,
)
from licensing.targets import LicenseKeySet, RevocationList
from licensing.tokens import (
    ACCEPTED_ALGORITHMS,
    LICENSE_TYPE,
    HighWaterMark,
    LicenseClaims,
    LicenseStatus,
    VerifiedLicense,
    verify_license,
)
from scoring_engine.errors import BadInputError, ExitCode, ModelError, VigilError
from scoring_engine.home import MAX_GRACE, EngineHome, atomic_write
from scoring_engine.online_state import clear_denial, denial_for, read_denial

if TYPE_CHECKING:
    from pathlib import Path

    from licensing.export import VerifiedExport

# Every size limit and time tolerance applied to what arrives from outside.
LIMITS: Final = DEFAULT_CONFIG

# How long before ``exp`` every run starts reminding the organisation to renew.
RENEWAL_REMINDER: Final = timedelta(days=7)

_HEADER_MEMBERS: Final = frozenset({"alg", "typ", "kid"})
_BASE64URL: Final = re.compile(r"[A-Za-z0-9_-]*")
_ED25519_SIGNATURE_BYTES: Final = 64
_INIT_HINT: Final = "run `vigil-engine init --root ROOT.json --license TOKEN_FILE`"


def clock() -> datetime:
    """The one clock reading of a command (tests replace this function)."""
    return datetime.now(UTC)


def isoformat_z(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


#### Errors ####


class LicenseCheckError(VigilError):
    """The license cannot be used to score (exit 3)."""

    exit_code = ExitCode.LICENSE


class BundleCheckError(ModelError):
    """A bundle, its installed files or the update metadata failed to verify (exit 4)."""


class ClockSetBackError(LicenseCheckError):
    """The clock reads earlier than a time this engine already observed (exit 3)."""


class TrustRootError(VigilError):
    """The trust root given to ``init`` is not usable root metadata (exit 4)."""

    exit_code = ExitCode.BUNDLE


class PortalUnreachableError(VigilError):
    exit_code = ExitCode.PORTAL_UNREACHABLE


_HINTS: Final[tuple[tuple[type[LicensingError], str], ...]] = (
    (ClockRollbackError, "correct the system clock"),
    (LicenseExpiredError, "renew it, then run `vigil-engine init --license NEW_TOKEN_FILE`"),
    (LicenseRevokedError, "this engine no longer scores; contact the portal operator"),
    (LicenseNotYetValidError, "check the system clock, or wait until then"),
    (InvalidLicenseError, "this engine only scores with a license issued by its portal"),
)


def engine_error(error: LicensingError) -> VigilError:
    """The engine error (one line, SPEC §6 exit code) for an error of ``licensing``."""
    message = str(error)
    for kind, hint in _HINTS:
        if isinstance(error, kind):
            message = f"{message}: {hint}"
            break
    classes: dict[int, type[VigilError]] = {
        ExitCode.LICENSE: LicenseCheckError,
        ExitCode.BUNDLE: BundleCheckError,
        ExitCode.PORTAL_UNREACHABLE: PortalUnreachableError,
        ExitCode.BAD_INPUT: BadInputError,
    }
    return classes.get(error.exit_code, VigilError)(message)


#### The trust root ####


@dataclass(frozen=True)
class TrustRoot:
    """What ``init`` and ``status`` show of a root: enough to compare it with the portal's."""

    version: int
    expires: datetime
    threshold: int
    root_keys: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "expires": isoformat_z(self.expires),
            "root_threshold": self.threshold,
            "root_keys": self.root_keys,
        }


def parse_trust_root(data: bytes) -> TrustRoot:
    """Check that ``data`` is TUF root metadata signed by a threshold of its own root keys.

    Expiry is not checked here: an engine may start from an old root and walk the signed
    chain to a current one, as TUF clients do.

    Raises:
        TrustRootError: It is not.
    """
    if len(data) > LIMITS.max_metadata_bytes:
        raise TrustRootError(f"trust root is larger than {LIMITS.max_metadata_bytes} bytes")
    try:
        metadata = Metadata.from_bytes(data)
    except (TufRepositoryError, ValueError, KeyError, TypeError) as error:
        raise TrustRootError(f"trust root is not TUF metadata: {error}") from None
    root = metadata.signed
    if not isinstance(root, Root):
        raise TrustRootError(f"trust root is {root.type} metadata, not root metadata")
    try:
        root.verify_delegate(Root.type, metadata.signed_bytes, metadata.signatures)
    except (TufRepositoryError, ValueError) as error:
        raise TrustRootError(
            f"trust root is not signed by a threshold of its own root keys: {error}"
        ) from None
    role = root.roles[Root.type]
    return TrustRoot(
        version=root.version,
        expires=root.expires,
        threshold=role.threshold,
        root_keys=len(role.keyids),
    )


def stored_trust_root(home: EngineHome) -> tuple[bytes, TrustRoot]:
    """The stored trust root and what it says.

    Raises:
        LicenseCheckError: ``init`` has not run here.
        TrustRootError: The stored root is unusable.
    """
    try:
        data = home.trust_root_file.read_bytes()
    except FileNotFoundError:
        raise LicenseCheckError(f"{home.path} is not initialised: {_INIT_HINT}") from None
    return data, parse_trust_root(data)


def known_roots(home: EngineHome) -> set[bytes]:
    """Every root version this engine has trusted: the stored one and the verified chain."""
    roots = set()
    if home.trust_root_file.is_file():
        roots.add(home.trust_root_file.read_bytes())
    history = home.tuf_cache / "root_history"
    if history.is_dir():
        roots.update(path.read_bytes() for path in history.glob("*.root.json"))
    return roots


#### The license token ####


def read_license_token(path: Path) -> str:
    """The token in a license file, size-checked before it is read whole.

    Raises:
        LicenseCheckError: Missing, oversized or not text.
    """
    try:
        with path.open("rb") as handle:
            data = handle.read(LIMITS.max_token_bytes + 1)
    except FileNotFoundError:
        raise LicenseCheckError(f"no license in {path.parent.parent}: {_INIT_HINT}") from None
    if len(data.strip()) > LIMITS.max_token_bytes:
        raise LicenseCheckError(f"license token is larger than {LIMITS.max_token_bytes} bytes")
    try:
        return data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise LicenseCheckError("license file does not hold a license token") from None


def _decode_segment(segment: str, what: str) -> bytes:
    if not _BASE64URL.fullmatch(segment):
        raise InvalidLicenseError(f"license {what} is not base64url")
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise InvalidLicenseError(f"license {what} is not base64url") from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate key")
    return dict(pairs)


def _no_constants(name: str) -> Any:
    raise ValueError(f"non-standard constant {name}")


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    # Strict like licensing: no duplicate keys, no NaN, so one token cannot mean two things.
    try:
        value = json.loads(
            data.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constants
        )
    except (ValueError, UnicodeDecodeError):
        raise InvalidLicenseError(f"license {what} must be a JSON object") from None
    if not isinstance(value, dict):
        raise InvalidLicenseError(f"license {what} must be a JSON object")
    return value


@dataclass(frozen=True)
class UnverifiedLicense:
    """A license token's header and claims, its signature not checked (no keys yet)."""

    claims: LicenseClaims
    kid: str
    algorithm: str


def inspect_license(token: str) -> UnverifiedLicense:
    """Every check of ``licensing.tokens.verify_license`` that needs no key.

    Size, compact-JWS shape, the header rules (``alg`` Ed25519 or EdDSA, never ``none`` or
    HMAC; ``typ``; a ``kid``; no other member) and the claims' presence and types. The
    signature is verified later, with the keys from the first verified export.

    Raises:
        InvalidLicenseError: The token fails one of those checks.
    """
    token = token.strip()
    if len(token) > LIMITS.max_token_bytes:
        raise InvalidLicenseError(f"license token is larger than {LIMITS.max_token_bytes} bytes")
    segments = token.split(".")
    if len(segments) != 3 or not segments[0] or not segments[1]:
        raise InvalidLicenseError("license token is not a compact JWS")
    header = _json_object(_decode_segment(segments[0], "header"), "header")
    algorithm = header.get("alg")
    if algorithm not in ACCEPTED_ALGORITHMS:
        raise InvalidLicenseError(f"license algorithm {algorithm!r} is not accepted")
    unexpected = set(header) - _HEADER_MEMBERS
    if unexpected:
        raise InvalidLicenseError(f"unexpected header members: {sorted(unexpected)}")
    if header.get("typ") != LICENSE_TYPE:
        raise InvalidLicenseError(f"license 'typ' must be {LICENSE_TYPE!r}")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise InvalidLicenseError("license names no signing key ('kid')")
    if len(_decode_segment(segments[2], "signature")) != _ED25519_SIGNATURE_BYTES:
        raise InvalidLicenseError("license signature is not an Ed25519 signature")
    claims = _json_object(_decode_segment(segments[1], "claims"), "claims")
    return UnverifiedLicense(
        claims=LicenseClaims.from_dict(claims), kid=kid, algorithm=str(algorithm)
    )


def grace_end(claims: LicenseClaims, grace: timedelta) -> datetime:
    return claims.exp + max(grace, LIMITS.leeway)


def check_validity_window(
    claims: LicenseClaims, now: datetime, grace: timedelta, revoked: frozenset[str]
) -> LicenseStatus:
    """The revocation and time rules of ``verify_license``, for a license not yet verified.

    Raises:
        LicenseRevokedError, LicenseNotYetValidError, LicenseExpiredError
    """
    if claims.jti in revoked:
        raise LicenseRevokedError(f"license {claims.jti} has been revoked")
    starts = max(claims.nbf, claims.iat)
    if now < starts - LIMITS.leeway:
        raise LicenseNotYetValidError(f"license is not valid before {isoformat_z(starts)}")
    if now < claims.exp + LIMITS.leeway:
        return LicenseStatus.VALID
    ends = grace_end(claims, grace)
    if now < ends:
        return LicenseStatus.IN_GRACE
    raise LicenseExpiredError(
        f"license expired at {isoformat_z(claims.exp)} and its grace period "
        f"ended {isoformat_z(ends)}"
    )


#### Verified documents (license keys, revocations) and the clock ####


def stored_license_keys(home: EngineHome) -> LicenseKeySet | None:
    """The license keys from the last verified export, or None before the first install.

    Raises:
        BundleCheckError: The stored file is corrupt.
    """
    try:
        data = home.license_keys_file.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return LicenseKeySet.from_bytes(data, LIMITS)
    except LicensingError as error:
        raise BundleCheckError(f"{home.license_keys_file}: {error}; reinstall a bundle") from None


def stored_revocations(home: EngineHome) -> RevocationList:
    """The revocation list from the last verified export (empty if none arrived yet).

    Raises:
        LicenseCheckError: The stored file is corrupt (a missing list must not look empty).
    """
    try:
        data = home.revocations_file.read_bytes()
    except FileNotFoundError:
        return RevocationList()
    try:
        return RevocationList.from_bytes(data, LIMITS)
    except LicensingError as error:
        raise LicenseCheckError(
            f"{home.revocations_file}: {error}; reinstall a bundle to restore it"
        ) from None


def store_verified_documents(home: EngineHome, export: VerifiedExport) -> None:
    """Keep the trust root, license keys and revocation list an export verified.

    Raises:
        BundleCheckError: A document is older than one already stored.
    """
    store_verified(
        home,
        root_version=export.root_version,
        root_bytes=export.root_bytes,
        license_keys=export.license_keys,
        revocations=export.revocations,
    )


def store_verified(
    home: EngineHome,
    *,
    root_version: int,
    root_bytes: bytes,
    license_keys: LicenseKeySet,
    revocations: RevocationList,
) -> None:
    """Keep a trust root, license keys and revocation list that TUF just verified
    (from an export or from the portal).

    Raises:
        BundleCheckError: A document is older than one already stored.
    """
    try:
        license_keys.check_not_older_than(stored_license_keys(home))
        revocations.check_not_older_than(stored_revocations(home))
    except LicensingError as error:
        raise engine_error(error) from None
    _, current_root = stored_trust_root(home)
    if root_version > current_root.version:
        atomic_write(home.trust_root_file, root_bytes)
    atomic_write(home.license_keys_file, license_keys.to_bytes())
    if revocations.version > 0:
        atomic_write(home.revocations_file, revocations.to_bytes())


def check_not_denied(home: EngineHome, license_id: str) -> None:
    """Refuse a license the portal answered as revoked or suspended (online updates).

    Raises:
        LicenseCheckError: The portal's refusal is recorded for this license.
    """
    denial = denial_for(home, license_id)
    if denial is None:
        return
    if denial.revoked:
        hint = (
            "this engine does not score with it; install a new license with "
            "`vigil-engine init --root ROOT.json --license NEW_TOKEN_FILE`"
        )
    else:
        hint = (
            "this engine does not score until the portal reinstates it and "
            "`vigil-engine update` succeeds"
        )
    raise LicenseCheckError(f"{denial.describe()}: {hint}")


def check_clock(home: EngineHome, now: datetime, *, advance: bool) -> None:
    """Refuse a clock set back before the latest time this engine observed.

    Raises:
        LicenseCheckError: It was set back, or ``clock.json`` is corrupt.
    """
    mark = HighWaterMark(home.clock_file)
    try:
        observed = mark.load()
    except LicenseError as error:
        raise engine_error(error) from None
    if observed is not None and now < observed - LIMITS.leeway:
        raise ClockSetBackError(
            f"clock reads {isoformat_z(now)}, earlier than {isoformat_z(observed)} already "
            "observed: the clock was set back; correct the system clock"
        )
    if advance:
        mark.advance(now)


#### Verification ####


def verify_stored_license(home: EngineHome, now: datetime) -> VerifiedLicense:
    """Verify the stored license fully: signature with the stored keys, revocation, time.

    Raises:
        LicenseCheckError: It cannot score.
        BadInputError: The grace period in config.json is invalid.
    """
    token = read_license_token(home.license_file)
    keys = stored_license_keys(home)
    if keys is None:
        raise LicenseCheckError(
            "the license signature is not verified yet: install a bundle exported by the "
            "portal first (`vigil-engine install BUNDLE_FILE`, or `vigil-engine update` "
            "with a portal), it carries the license keys"
        )
    verified = verify_license_token(token, home, keys, now)
    check_not_denied(home, verified.claims.jti)
    return verified


def verify_license_token(
    token: str, home: EngineHome, keys: LicenseKeySet, now: datetime
) -> VerifiedLicense:
    """Verify ``token`` with ``keys``, the home's revocation list and its grace period.

    Raises:
        LicenseCheckError: It cannot score.
    """
    revoked = stored_revocations(home).revoked_ids
    try:
        return verify_license(
            token,
            keys.keys,
            reference_time=now,
            grace=home.license_grace(),
            revoked=revoked,
            config=LIMITS,
        )
    except LicensingError as error:
        raise engine_error(error) from None


def check_entitled(claims: LicenseClaims, channel: str, label: str) -> None:
    """Raises LicenseCheckError unless the license grants the bundle's channel."""
    if channel not in claims.channels:
        raise LicenseCheckError(
            f"license {claims.jti} does not entitle channel {channel!r} of bundle {label} "
            f"(it grants {', '.join(claims.channels)})"
        )


def license_warnings(verified: VerifiedLicense) -> tuple[str, ...]:
    """What every run prints about a license that still scores but needs attention."""
    claims = verified.claims
    now = verified.reference_time
    if verified.in_grace:
        left = verified.grace_ends - now
        expired = (
            f"LICENSE {claims.jti} EXPIRED at {isoformat_z(claims.exp)}. Scoring continues "
            f"only until {isoformat_z(verified.grace_ends)} ({_days(left)} left); updates "
            "and reports have stopped. Renew it now and run "
            "`vigil-engine init --license NEW_TOKEN_FILE`."
        )
        return (expired,)
    if claims.exp - now <= RENEWAL_REMINDER:
        reminder = (
            f"license {claims.jti} expires at {isoformat_z(claims.exp)} "
            f"(in {_days(claims.exp - now)}): renew it"
        )
        return (reminder,)
    return ()


def _days(span: timedelta) -> str:
    days = span.total_seconds() / 86400
    if days >= 1:
        return f"{days:.0f} day{'s' if round(days) != 1 else ''}"
    return f"{max(span.total_seconds() / 3600, 0):.0f} hours"


#### Initialisation ####


@dataclass(frozen=True)
class Initialised:
    given_root: TrustRoot
    stored_root: TrustRoot
    claims: LicenseClaims
    signature_verified: bool
    warnings: tuple[str, ...]


def initialise(
    home: EngineHome, root_bytes: bytes, token: str, portal_url: str | None
) -> Initialised:
    """``vigil-engine init``: check the trust root and the license, then store them.

    A home that already trusts a root accepts only a root of its verified chain (to move
    to another portal, start a new home). Once license keys are stored (re-init, e.g. a
    renewed license) the license is verified fully; before, every check that needs no key
    is made. Nothing is stored unless both pass.

    Raises:
        TrustRootError: The root is not usable or not one this home trusts (exit 4).
        LicenseCheckError: The license cannot be used (exit 3).
    """
    given = parse_trust_root(root_bytes)
    try:
        claims = inspect_license(token).claims
    except LicensingError as error:
        raise engine_error(error) from None
    with home.lock():
        if home.trust_root_file.is_file() and root_bytes not in known_roots(home):
            _, stored = stored_trust_root(home)
            raise TrustRootError(
                f"the root given is not one this engine trusts (it trusts version "
                f"{stored.version} of its portal's root and the roots signed since); to trust "
                "another portal, initialise a new engine home (--home DIR)"
            )
        now = clock()
        check_clock(home, now, advance=True)
        keys = stored_license_keys(home)
        warnings: tuple[str, ...] = ()
        if keys is not None:
            warnings = license_warnings(verify_license_token(token, home, keys, now))
        else:
            revoked = stored_revocations(home).revoked_ids
            try:
                check_validity_window(claims, now, home.license_grace(), revoked)
            except LicensingError as error:
                raise engine_error(error) from None
        if not home.trust_root_file.is_file():
            atomic_write(home.trust_root_file, root_bytes)
        # The token is also the engine's credential towards the portal: owner-only.
        atomic_write(home.license_file, token.encode("ascii") + b"\n", mode=0o600)
        # A portal's refusal concerns the license it refused: another license clears it.
        denial = read_denial(home)
        if denial is not None and denial.license_id != claims.jti:
            clear_denial(home)
        elif denial is not None:
            warnings = (*warnings, f"{denial.describe()}: this engine does not score with it")
        if portal_url is not None:
            home.update_config(portal_url=portal_url)
        _, stored_root = stored_trust_root(home)
    return Initialised(
        given_root=given,
        stored_root=stored_root,
        claims=claims,
        signature_verified=keys is not None,
        warnings=warnings,
    )


#### Status ####


@dataclass(frozen=True)
class LicenseReport:
    """What ``status`` shows of the license, whether or not it can score."""

    status: str  # valid, in_grace, expired, revoked, not_yet_valid, unverified, invalid...
    reason: str | None
    claims: LicenseClaims | None
    signature_verified: bool
    grace_ends: datetime | None

    def to_dict(self) -> dict[str, Any]:
        claims = self.claims
        details: dict[str, Any] = {}
        if claims is not None:
            details = {
                "organisation": claims.org_name,
                "organisation_id": claims.sub,
                "license_id": claims.jti,
                "issuer": claims.iss,
                "issued_at": isoformat_z(claims.iat),
                "not_before": isoformat_z(claims.nbf),
                "expires": isoformat_z(claims.exp),
                "channels": list(claims.channels),
                "max_engines": claims.max_engines,
                "features": list(claims.features),
            }
        return {
            "status": self.status,
            "reason": self.reason,
            "signature_verified": self.signature_verified,
            "grace_ends": isoformat_z(self.grace_ends) if self.grace_ends else None,
            **details,
        }


_STATUS_OF_ERROR: Final[tuple[tuple[type[LicensingError], str], ...]] = (
    (ClockRollbackError, "clock_set_back"),
    (LicenseRevokedError, "revoked"),
    (LicenseNotYetValidError, "not_yet_valid"),
    (LicenseExpiredError, "expired"),
)


def _status_of(error: LicensingError) -> str:
    for kind, status in _STATUS_OF_ERROR:
        if isinstance(error, kind):
            return status
    return "invalid"


def _state_without_keys(
    claims: LicenseClaims, now: datetime, grace: timedelta, revoked: frozenset[str]
) -> tuple[str, str]:
    try:
        status = check_validity_window(claims, now, grace, revoked)
    except LicensingError as error:
        return _status_of(error), str(error)
    if status is LicenseStatus.IN_GRACE:
        return status.value, "expired, and its signature is not verified yet"
    return "unverified", "its signature is verified when the first bundle is installed"


def _state_with_keys(
    token: str, keys: LicenseKeySet, now: datetime, grace: timedelta, revoked: frozenset[str]
) -> tuple[str, str | None]:
    try:
        verified = verify_license(
            token, keys.keys, reference_time=now, grace=grace, revoked=revoked, config=LIMITS
        )
    except LicensingError as error:
        return _status_of(error), str(error)
    if verified.in_grace:
        return (
            verified.status.value,
            f"expired: scoring stops at {isoformat_z(verified.grace_ends)}",
        )
    return verified.status.value, None


def describe_license(home: EngineHome, now: datetime) -> LicenseReport:
    """The license as ``status`` shows it; never raises for a license problem."""
    try:
        token = read_license_token(home.license_file)
        claims = inspect_license(token).claims
    except (LicenseCheckError, LicensingError) as error:
        return LicenseReport("invalid", str(error), None, signature_verified=False, grace_ends=None)
    grace = MAX_GRACE
    with contextlib.suppress(BadInputError):
        grace = home.license_grace()
    keys = None
    reason: str | None
    try:
        check_clock(home, now, advance=False)
        revoked = stored_revocations(home).revoked_ids
        keys = stored_license_keys(home)
    except ClockSetBackError as error:
        status, reason = "clock_set_back", str(error)
    except VigilError as error:
        status, reason = "invalid", str(error)
    else:
        if keys is None:
            status, reason = _state_without_keys(claims, now, grace, revoked)
        else:
            status, reason = _state_with_keys(token, keys, now, grace, revoked)
        denial = denial_for(home, claims.jti)
        if denial is not None and status in {"valid", "in_grace", "unverified"}:
            status = "revoked" if denial.revoked else "suspended"
            reason = denial.describe()
    return LicenseReport(
        status,
        reason,
        claims,
        signature_verified=keys is not None and status in {"valid", "in_grace"},
        grace_ends=grace_end(claims, grace),
    )
