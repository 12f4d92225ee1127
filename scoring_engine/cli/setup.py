"""``vigil-engine init``, ``install`` and ``status`` (SPEC §4): the engine's trust and bundle.

The rules these commands enforce are in ``scoring_engine.trust`` (trust root, license,
clock) and ``scoring_engine.installed`` (bundle install and checks); docs/licensing.md
explains them for operators.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from licensing.bundles import parse_version
from licensing.tokens import LicenseClaims
from scoring_engine import __version__, online_state, outbox, trust
from scoring_engine.activation import activate, unreachable_at_init
from scoring_engine.cli.common import fail, initialised_home, warn
from scoring_engine.cli.scoring import HomeOption
from scoring_engine.errors import ExitCode, VigilError
from scoring_engine.home import EngineHome
from scoring_engine.installed import current_record, describe_installed, install_export
from scoring_engine.remote import PortalTransport, RemoteSettings, is_private_channel
from scoring_engine.review.queue import review_queue_status
from scoring_engine.trust import (
    LIMITS,
    PortalUnreachableError,
    TrustRoot,
    check_entitled,
    describe_license,
    initialise,
    isoformat_z,
    read_license_token,
    stored_trust_root,
)
from scoring_engine.updates import update_due

console = Console(soft_wrap=True)


def _checked_portal_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in {"https", "http"} or not parts.netloc:
        fail(f"--portal must be an http(s) URL, not {url!r}", ExitCode.BAD_INPUT)
    return url.rstrip("/")


def _describe_root(root: TrustRoot) -> str:
    return (
        f"trust root version {root.version}: {root.root_keys} root key(s), threshold "
        f"{root.threshold}, expires {isoformat_z(root.expires)}"
    )


def init(
    root: Annotated[
        Path,
        typer.Option(
            "--root",
            help="The portal's TUF root metadata (root.json).",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
    license_file: Annotated[
        Path,
        typer.Option(
            "--license", help="The license token file.", exists=True, dir_okay=False, readable=True
        ),
    ],
    portal: Annotated[
        str | None, typer.Option("--portal", help="The portal's URL, for `vigil-engine update`.")
    ] = None,
    home: HomeOption = None,
) -> None:
    """Store the portal's trust root and this organisation's license, checking both."""
    portal_url = _checked_portal_url(portal) if portal is not None else None
    engine_home = EngineHome.resolve(home)
    try:
        with root.open("rb") as handle:
            root_bytes = handle.read(LIMITS.max_metadata_bytes + 1)
        token = read_license_token(license_file)
        done = initialise(engine_home, root_bytes, token, portal_url)
        installed = current_record(engine_home)
    except VigilError as error:
        fail(str(error), error.exit_code)

    claims = done.claims
    print(f"Engine home {engine_home.path}: {_describe_root(done.stored_root)}.")
    if done.stored_root.version != done.given_root.version:
        print(f"(The root given is version {done.given_root.version}, part of that chain.)")
    print(
        f"License {claims.jti} for {claims.org_name} ({claims.sub}): channels "
        f"{', '.join(claims.channels)}, up to {claims.max_engines} engine(s), "
        f"expires {isoformat_z(claims.exp)}."
    )
    if done.signature_verified:
        print("The license's signature is verified with the portal's license keys.")
    else:
        print(
            "The license's structure, header and dates are checked; its signature will be "
            "verified when the first bundle is installed (the portal's license keys arrive "
            "signed with it)."
        )
    for message in done.warnings:
        warn(message)
    if portal_url is not None:
        _activate(engine_home, portal_url, token, claims)
    if installed is None:
        print(
            "Next: vigil-engine update"
            if portal_url is not None
            else "Next: vigil-engine install BUNDLE_FILE"
        )
    else:
        try:
            check_entitled(claims, installed.channel, installed.label)
        except VigilError as error:
            warn(f"{error}: scoring will refuse until a bundle of a licensed channel is installed")


def _activate(engine_home: EngineHome, portal_url: str, token: str, claims: LicenseClaims) -> None:
    """``init --portal``: take this engine's seat; the offline-verified state stays stored
    whatever the portal answers (``update`` activates later if the portal was down).
    """
    if not is_private_channel(portal_url):
        warn(
            f"{portal_url} is not https: the license token, this engine's credential, "
            "travels in clear text"
        )
    try:
        settings = RemoteSettings.with_timeout(engine_home.portal_timeout())
        with PortalTransport(portal_url, token, settings) as transport, engine_home.lock():
            seat = activate(engine_home, transport, claims, trust.clock())
    except PortalUnreachableError as error:
        fail(str(unreachable_at_init(error)), error.exit_code)
    except VigilError as error:
        fail(str(error), error.exit_code)
    record = seat.record
    until = isoformat_z(record.lease_expires_at) if record.lease_expires_at else "unknown"
    verified = (
        "verified"
        if record.lease_verified
        else "its signature is verified with the license keys at the first update"
    )
    print(
        f"Activated this engine ({record.engine_id}) at {portal_url}: activation "
        f"{record.activation_id}, lease until {until} ({verified})."
    )


def install(
    bundle_file: Annotated[
        Path,
        typer.Argument(
            help="A bundle file from `vigil-portal bundles export`.",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
    home: HomeOption = None,
) -> None:
    """Verify a bundle file exported by the portal against the trust root, and switch to it."""
    engine_home = EngineHome.resolve(home)
    try:
        result = install_export(engine_home, bundle_file)
    except VigilError as error:
        fail(str(error), error.exit_code)
    record = result.record
    claims = result.license.claims
    for message in result.warnings:
        warn(message)
    print(
        f"Installed {record.label} (channel {record.channel}), verified against trust root "
        f"version {record.root_version}; sha256 {record.target_hashes['sha256']}."
    )
    print(f"Previous bundle: {result.previous.label if result.previous else 'none'}.")
    print(
        f"License {claims.jti} for {claims.org_name} verified: expires {isoformat_z(claims.exp)}."
    )


def _status_payload(engine_home: EngineHome) -> dict[str, Any]:
    now = trust.clock()
    try:
        trust_root: dict[str, Any] = stored_trust_root(engine_home)[1].to_dict()
    except VigilError as error:
        trust_root = {"error": str(error)}
    try:
        portal_url = engine_home.portal_url()
    except VigilError as error:
        portal_url = f"invalid config: {error}"
    bundle = describe_installed(engine_home)
    return {
        "home": str(engine_home.path),
        "engine_version": __version__,
        "checked_at": isoformat_z(now),
        "portal": portal_url,
        "trust_root": trust_root,
        "license": describe_license(engine_home, now).to_dict(),
        "bundle": bundle,
        **_pending_reports(engine_home),
        "review_queue": review_queue_status(engine_home),
        **_online_status(engine_home, now, bundle),
    }


def _pending_reports(engine_home: EngineHome) -> dict[str, int | None]:
    """``pending_reports``: unsent outbox batches plus usage and feedback not queued yet;
    ``refused_reports``: the unsent batches the portal refused (None: unreadable)."""
    try:
        pending = outbox.pending(engine_home)
    except (sqlite3.Error, OSError):
        return {"pending_reports": None, "refused_reports": None}
    return {"pending_reports": pending.total, "refused_reports": pending.refused}


def _iso_or_none(moment: datetime | None) -> str | None:
    return isoformat_z(moment) if moment is not None else None


def _online_status(
    engine_home: EngineHome, now: datetime, bundle: dict[str, Any] | None
) -> dict[str, Any]:
    """What the engine knows of the portal from its last contact (status goes not online)."""
    activation = online_state.read_activation(engine_home)
    updates = online_state.read_updates(engine_home)
    available = updates.available
    installed_version = bundle.get("version") if bundle and bundle.get("installed") else None
    newer = False
    if available is not None:
        try:
            newer = installed_version is None or parse_version(available.version) > parse_version(
                installed_version
            )
        except ValueError:
            newer = False
    try:
        due: bool | None = update_due(engine_home, now).due
    except VigilError:
        due = None
    return {
        "engine_id": online_state.engine_id(engine_home, now, create=False),
        "activation": None
        if activation is None
        else {
            "status": activation.status,
            "portal": activation.portal,
            "activation_id": activation.activation_id,
            "license_id": activation.license_id,
            "activated_at": _iso_or_none(activation.activated_at),
            "renewed_at": _iso_or_none(activation.renewed_at),
            "lease_expires_at": _iso_or_none(activation.lease_expires_at),
            "lease_verified": activation.lease_verified,
            "lease_expired": activation.lease_expires_at is not None
            and activation.lease_expires_at <= now,
            "detail": activation.detail,
        },
        "last_update": _iso_or_none(updates.last_update),
        "last_check": _iso_or_none(updates.last_check),
        "last_attempt": _iso_or_none(updates.last_attempt),
        "last_error": updates.last_error,
        "available": None
        if available is None
        else {
            "label": available.label,
            "version": available.version,
            "channel": available.channel,
            "newer_than_installed": newer,
        },
        "update_due": due,
    }


_STATUS_STYLE = {"valid": "green", "in_grace": "bold yellow", "unverified": "yellow"}


def _print_status(payload: dict[str, Any]) -> None:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("Engine home", payload["home"])
    table.add_row("Engine version", payload["engine_version"])
    root = payload["trust_root"]
    table.add_row(
        "Trust root",
        root.get("error") or f"version {root['version']}, expires {root['expires']}",
    )
    table.add_row("Portal", payload["portal"] or "not set (vigil-engine init --portal URL)")

    lic = payload["license"]
    status = lic["status"]
    style = _STATUS_STYLE.get(status, "bold red")
    headline = f"[{style}]{status.upper().replace('_', ' ')}[/]"
    if lic["reason"]:
        headline += f" ({lic['reason']})"
    table.add_row("License", headline)
    if "license_id" in lic:
        table.add_row("  organisation", f"{lic['organisation']} ({lic['organisation_id']})")
        table.add_row("  license id", lic["license_id"])
        table.add_row("  expires", f"{lic['expires']} (grace until {lic['grace_ends']})")
        table.add_row("  channels", ", ".join(lic["channels"]))
        table.add_row("  max engines", str(lic["max_engines"]))
        table.add_row("  features", ", ".join(lic["features"]) or "none")

    bundle = payload["bundle"]
    if bundle is None:
        table.add_row("Bundle", "none installed (vigil-engine install BUNDLE_FILE)")
    elif not bundle["installed"]:
        table.add_row("Bundle", f"[bold red]unusable[/] ({bundle['integrity']})")
    else:
        integrity = bundle["integrity"]
        shown = (
            "[green]files verified[/]" if integrity == "verified" else f"[bold red]{integrity}[/]"
        )
        table.add_row("Bundle", f"{bundle['label']} (channel {bundle['channel']})")
        table.add_row("  installed at", bundle["installed_at"])
        table.add_row("  integrity", shown)
        table.add_row("  previous", bundle["previous_version"] or "none")
    _print_online(table, payload)
    pending = str(payload["pending_reports"])
    if payload["refused_reports"]:
        pending += (
            f" ([bold red]{payload['refused_reports']} refused by the portal[/]:"
            " vigil-engine outbox list)"
        )
    table.add_row("Pending reports", pending)
    queue = payload["review_queue"]
    table.add_row(
        "Review queue",
        escape(queue["error"])
        if "error" in queue
        else f"{queue['pending']:,} pending, {queue['reviewed']:,} reviewed",
    )
    console.print(table)


def _activation_text(activation: dict[str, Any] | None, portal: str | None) -> str | None:
    if activation is None:
        return None if portal is None else "none (vigil-engine update activates this engine)"
    state = activation["status"]
    if state != online_state.ACTIVE:
        style = "yellow" if state == online_state.PENDING else "bold red"
        return f"[{style}]{state.upper()}[/] ({escape(activation['detail'] or '')})"
    lease = activation["lease_expires_at"] or "unknown"
    verified = "verified" if activation["lease_verified"] else "not verified yet"
    expired = " [bold red]EXPIRED[/]" if activation["lease_expired"] else ""
    return (
        f"[green]active[/] (activation {activation['activation_id']}), lease until "
        f"{lease}{expired} ({verified})"
    )


def _print_online(table: Table, payload: dict[str, Any]) -> None:
    if payload["engine_id"]:
        table.add_row("Engine id", payload["engine_id"])
    activation = _activation_text(payload["activation"], payload["portal"])
    if activation is not None:
        table.add_row("Activation", activation)
    table.add_row("Last update", payload["last_update"] or "never")
    check = payload["last_check"] or "never"
    if payload["last_error"]:
        check += (
            f" ([bold red]failed at {payload['last_attempt']}:[/] {escape(payload['last_error'])})"
        )
    table.add_row("Last check", check)
    available = payload["available"]
    if available is not None:
        if available["newer_than_installed"]:
            shown = (
                f"[bold]{available['label']}[/] (channel {available['channel']}): newer than "
                "the installed bundle; run `vigil-engine update`"
            )
        else:
            shown = f"{available['label']} (channel {available['channel']})"
        table.add_row("Available", shown)


def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
    home: HomeOption = None,
) -> None:
    """Show the license, the installed bundle and the trust root, even when they are bad."""
    engine_home = initialised_home(home)
    payload = _status_payload(engine_home)
    if as_json:
        print(json.dumps(payload, indent=2, sort_keys=True))
        return
    _print_status(payload)
    if payload["license"]["status"] == "in_grace":
        warn(f"LICENSE EXPIRED: scoring stops at {payload['license']['grace_ends']}; renew it now")


def register(app: typer.Typer) -> None:
    app.command()(init)
    app.command()(install)
    app.command()(status)
