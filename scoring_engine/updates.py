"""``vigil-engine update``: the newest bundle of the license's channel, from the portal.

One verification path with the air-gapped ``install``: the stock python-tuf ``Updater``
(through ``licensing.client.UpdateClient``) over ``remote.PortalFetcher``, the same
persistent metadata cache (``trust/tuf/``), and the same install steps
(``installed.install_verified``). In order, under the home's lock:

1. The clock is read once and checked against the high-water mark. A license the portal
   already answered as revoked is refused without asking again (exit 3).
2. The seat: the activation's lease is renewed, or the engine activated if it is not
   (``activation.keep_seat``). A revoked or suspended license, no free seat, or a
   deactivated engine stop here (exit 3); so does a portal that cannot be reached (exit 5).
   The portal having accepted the license, a recorded suspension is lifted.
3. TUF refresh from ``{portal}/tuf/metadata/``: root chain, timestamp, snapshot, targets,
   each checked for signatures, versions (rollback) and expiry (freeze) against the one
   clock reading. Any failure is exit 4.
4. The signed license keys and revocation list are stored as ``install`` stores them
   (never older ones); the license is verified with them (a revoked license stops here,
   exit 3) and must not be past ``exp`` (updates stop at expiry; scoring goes on through
   the grace period). The lease is verified with the same keys.
5. The channel followed (config ``channel``, else the installed bundle's, else ``stable``,
   else the license's first) must be granted by the license. Its signed index
   (``channels/<channel>.json``) names the current bundle; it is recorded as available.
6. If it is newer than the installed bundle it is downloaded (length and hashes against
   the signed targets, then ``read_bundle``'s checks) and installed by
   ``install_verified``: rollback guard, engine version range, new ``bundles/<version>/``,
   atomic switch of ``bundles/current.json``, previous bundle kept.
7. ``updates.json`` records what the channel offered as soon as it is known, and the
   successful check (and install) at the end; a failure records its message instead, so
   ``status`` can tell why updates stopped without going online.

``update_due`` serves ``--if-due``: a check is due when the last successful one is older
than ``update_interval_hours`` (default 24), never happened, or lies in the future.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Final

from tuf.api import exceptions as tuf_exceptions

from licensing.bundles import parse_version
from licensing.client import UpdateClient
from licensing.exceptions import ExpiredMetadataError, LicensingError
from licensing.export import VerifiedExport
from licensing.targets import channel_index_target
from licensing.tokens import HighWaterMark, VerifiedLicense
from scoring_engine import online_state, trust
from scoring_engine.activation import (
    Seat,
    keep_seat,
    portal_failure,
    refusal_context,
    verify_stored_lease,
)
from scoring_engine.errors import BadInputError, VigilError
from scoring_engine.installed import (
    InstallRecord,
    InstallResult,
    current_record,
    install_verified,
    remove_unreferenced,
    scratch_directory,
)
from scoring_engine.online_state import AvailableBundle
from scoring_engine.remote import (
    PortalFetcher,
    PortalTransport,
    RefusalContext,
    RemoteSettings,
    ResponseTooLargeError,
    find_in_chain,
)
from scoring_engine.trust import (
    LIMITS,
    BundleCheckError,
    LicenseCheckError,
    check_clock,
    check_not_denied,
    engine_error,
    inspect_license,
    isoformat_z,
    license_warnings,
    read_license_token,
    store_verified,
    stored_trust_root,
    verify_stored_license,
)

if TYPE_CHECKING:
    from datetime import datetime, timedelta

    from licensing.tokens import LicenseClaims
    from scoring_engine.home import EngineHome

INSTALLED: Final = "installed"
UP_TO_DATE: Final = "up_to_date"
NEWER_INSTALLED: Final = "newer_installed"
_DEFAULT_CHANNEL: Final = "stable"


@dataclass(frozen=True)
class UpdateOutcome:
    action: str  # INSTALLED, UP_TO_DATE or NEWER_INSTALLED
    available: AvailableBundle
    current: InstallRecord | None
    installed: InstallResult | None
    seat: Seat
    license: VerifiedLicense
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class Due:
    due: bool
    reason: str


def update_due(home: EngineHome, now: datetime) -> Due:
    """Whether ``update --if-due`` should check now.

    Raises:
        BadInputError: ``update_interval_hours`` in config.json is invalid.
    """
    interval = home.update_interval()
    last = online_state.read_updates(home).last_check
    if last is None:
        return Due(due=True, reason="never checked")
    if now < last - LIMITS.leeway:
        return Due(due=True, reason="the last check is in the future")
    following = last + interval
    if now >= following:
        return Due(due=True, reason=f"last checked {isoformat_z(last)}")
    return Due(
        due=False,
        reason=f"update not due: last successful check {isoformat_z(last)}, next after "
        f"{isoformat_z(following)} (every {_hours(interval)})",
    )


def _hours(interval: timedelta) -> str:
    hours = interval.total_seconds() / 3600
    return f"{hours:g} h"


def update_channel(home: EngineHome, claims: LicenseClaims, current: InstallRecord | None) -> str:
    """The channel ``update`` follows; see the module docstring.

    Raises:
        LicenseCheckError: The configured channel is not granted by the license.
    """
    configured = home.configured_channel()
    if configured is not None:
        if configured not in claims.channels:
            raise LicenseCheckError(
                f"config.json sets channel {configured!r}, which license {claims.jti} does not "
                f"grant (it grants {', '.join(claims.channels)})"
            )
        return configured
    if current is not None and current.channel in claims.channels:
        return current.channel
    if _DEFAULT_CHANNEL in claims.channels:
        return _DEFAULT_CHANNEL
    return claims.channels[0]


def _verification_failure(error: LicensingError, portal_url: str, step: str) -> VigilError:
    """One line for metadata or a target the engine refused while ``step`` (mostly exit 4)."""
    prefix = f"update from {portal_url} refused while {step}: "
    oversized = find_in_chain(error, ResponseTooLargeError) or find_in_chain(
        error, tuf_exceptions.DownloadLengthMismatchError
    )
    if oversized is not None:
        return BundleCheckError(
            f"{prefix}oversized answer ({oversized}): a broken portal, or something between "
            "it and this engine"
        )
    if find_in_chain(error, tuf_exceptions.BadVersionNumberError):
        return BundleCheckError(
            f"{prefix}update metadata is older than metadata this engine already verified "
            f"(rollback: {error.__cause__ or error})"
        )
    if isinstance(error, ExpiredMetadataError):
        return BundleCheckError(
            f"{prefix}{error} (the portal stopped re-signing it, something replays old "
            "metadata, or this machine's clock is wrong)"
        )
    if find_in_chain(error, tuf_exceptions.UnsignedMetadataError):
        return BundleCheckError(
            f"{prefix}update metadata is not signed by this engine's portal "
            f"(tampered, or another portal): {error.__cause__ or error}"
        )
    if find_in_chain(error, tuf_exceptions.LengthOrHashMismatchError):
        return BundleCheckError(
            f"{prefix}the download does not match its signed length and hashes (tampered "
            "on the portal or on the way)"
        )
    refused = engine_error(error)
    return type(refused)(f"{prefix}{refused}")


@contextlib.contextmanager
def _portal_errors(
    home: EngineHome, context: RefusalContext, now: datetime, step: str
) -> Iterator[None]:
    """Turn what the portal, python-tuf and licensing raise into one engine error."""
    try:
        yield
    except LicensingError as error:
        failure = portal_failure(home, error, context, now)
        if failure is not None:
            raise failure from None
        raise _verification_failure(error, context.portal_url, step) from None


def run_update(home: EngineHome, *, settings: RemoteSettings | None = None) -> UpdateOutcome:
    """``vigil-engine update``; see the module docstring.

    Raises:
        BadInputError: No portal configured, or an invalid config.json (exit 2).
        LicenseCheckError: Not initialised, or the license, channel or seat is refused (3).
        BundleCheckError: Metadata or bundle failed to verify (4).
        PortalUnreachableError: The portal did not answer (5).
    """
    portal_url = home.portal_url()
    if portal_url is None:
        raise BadInputError(
            f"{home.path} names no portal: run `vigil-engine init --root ROOT.json --license "
            "TOKEN_FILE --portal URL` (or install bundle files with `vigil-engine install`)"
        )
    if not home.is_initialised():
        stored_trust_root(home)  # raises with the hint to run init
        raise LicenseCheckError(f"{home.path} holds no license: run `vigil-engine init`")
    if settings is None:
        settings = RemoteSettings.with_timeout(home.portal_timeout())
    token = read_license_token(home.license_file)
    try:
        claims = inspect_license(token).claims
    except LicensingError as error:
        raise engine_error(error) from None
    now = trust.clock()
    with home.lock():
        try:
            outcome = _update(home, portal_url, token, claims, now, settings)
        except VigilError as error:
            record = online_state.read_updates(home)
            online_state.write_updates(
                home,
                replace(
                    record,
                    last_attempt=now,
                    last_error=str(error),
                    last_error_exit_code=int(error.exit_code),
                ),
            )
            raise
        remove_unreferenced(home)
    return outcome


def _update(
    home: EngineHome,
    portal_url: str,
    token: str,
    claims: LicenseClaims,
    now: datetime,
    settings: RemoteSettings,
) -> UpdateOutcome:
    root_bytes, _ = stored_trust_root(home)
    check_clock(home, now, advance=True)
    denial = online_state.denial_for(home, claims.jti)
    if denial is not None and denial.revoked:
        check_not_denied(home, claims.jti)  # raises: a revocation is not asked about again

    with PortalTransport(portal_url, token, settings) as transport:
        return _update_online(home, transport, root_bytes, claims, denial, now)


def _update_online(
    home: EngineHome,
    transport: PortalTransport,
    root_bytes: bytes,
    claims: LicenseClaims,
    denial: online_state.PortalDenial | None,
    now: datetime,
) -> UpdateOutcome:
    portal_url = transport.portal_url
    seat = keep_seat(home, transport, claims, now)
    if denial is not None:
        online_state.clear_denial(home)  # the portal accepted the license again

    context = refusal_context(portal_url, claims)
    fetcher = PortalFetcher(transport)
    # Python-tuf checks expiry against one time; never one earlier than already observed.
    reference_time = max(now, HighWaterMark(home.clock_file).load() or now)
    with _portal_errors(home, context, now, "verifying update metadata"):
        client = UpdateClient(
            trusted_root=root_bytes,
            metadata_dir=home.tuf_cache,
            metadata_base_url=fetcher.metadata_base_url,
            target_base_url=fetcher.target_base_url,
            fetcher=fetcher,
            reference_time=reference_time,
            config=LIMITS,
        )
        client.refresh()
        license_keys = client.license_keys()
        revocations = client.revocations()
        root_version = client.root_version
        newest_root = client.root_bytes()
    store_verified(
        home,
        root_version=root_version,
        root_bytes=newest_root,
        license_keys=license_keys,
        revocations=revocations,
    )
    verified = verify_stored_license(home, now)
    verify_stored_lease(home, license_keys, now)
    seat = replace(seat, record=online_state.read_activation(home) or seat.record)
    if verified.in_grace:
        raise LicenseCheckError(
            f"license {claims.jti} expired at {isoformat_z(verified.claims.exp)}: updates "
            f"stopped at expiry (scoring continues until {isoformat_z(verified.grace_ends)}); "
            "renew it, then run `vigil-engine init --license NEW_TOKEN_FILE`"
        )

    current = current_record(home)
    channel = update_channel(home, verified.claims, current)
    context = replace(context, channel=channel)
    with _portal_errors(home, context, now, f"reading the index of channel {channel!r}"):
        if not client.has_target(channel_index_target(channel)):
            raise BundleCheckError(
                f"the portal at {portal_url} publishes no bundle on channel {channel!r}"
            )
        index = client.channel_index(channel)
    available = AvailableBundle(
        channel=channel, name=index.name, version=index.bundle_version, target=index.target
    )
    # What the portal offers is news even if installing it fails below; the check only
    # counts as done (for --if-due) once the whole update succeeded.
    record = replace(online_state.read_updates(home), last_attempt=now, available=available)
    online_state.write_updates(home, record)

    action = _compare(available, current)
    result = None
    if action == INSTALLED:
        with scratch_directory(home) as workdir:
            with _portal_errors(home, context, now, f"downloading {index.target}"):
                bundle = client.fetch_bundle(index.target, workdir)
                info = client.target_info(index.target)
            export = VerifiedExport(
                bundle=bundle,
                target_path=index.target,
                custom=dict(info.custom) if isinstance(info.custom, dict) else {},
                license_keys=license_keys,
                revocations=revocations,
                root_version=root_version,
                root_bytes=newest_root,
            )
            result = install_verified(home, export, now, source=f"{portal_url} {index.target}")
        record = replace(record, last_update=now)
    online_state.write_updates(
        home, replace(record, last_check=now, last_error=None, last_error_exit_code=None)
    )
    return UpdateOutcome(
        action=action,
        available=available,
        current=current,
        installed=result,
        seat=seat,
        license=verified,
        warnings=license_warnings(verified),
    )


def _compare(available: AvailableBundle, current: InstallRecord | None) -> str:
    if current is None:
        return INSTALLED
    offered, installed = parse_version(available.version), parse_version(current.version)
    if offered > installed:
        return INSTALLED
    if offered == installed:
        return UP_TO_DATE
    return NEWER_INSTALLED
