"""What the engine home remembers of the portal: engine id, activation, updates, refusals.

Files (docs/licensing.md, "Online updates"), each JSON written atomically:

- ``engine.json``: ``engine_id``, a random UUID made once per home. It names this engine
  to the portal (one seat of the license); it is not a secret.
- ``activation.json``: this engine's activation at the portal for one license: status
  (``active``, ``pending`` when the portal could not be reached, ``refused``,
  ``deactivated``), activation id, lease expiry, whether the lease's signature verified.
  The lease itself is ``trust/lease.jwt``.
- ``updates.json``: the last successful check, the last bundle installed by ``update``,
  the newest bundle the portal's signed channel index offered at that check, and the last
  failure (so ``status`` can say why updates stopped without going online).
- ``trust/portal-denial.json``: the portal refused the license as revoked or suspended.
  While it names the installed license, the engine does not score. A revocation stays
  until another license is installed; a suspension until the portal accepts the license
  again. A record that cannot be read counts as a suspension (fail closed, recoverable
  with a successful ``update``).

These records are the engine's memory, not evidence: nothing here is trusted to grant
anything, only to refuse or to report.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from scoring_engine.home import atomic_write, json_bytes

if TYPE_CHECKING:
    from pathlib import Path

    from scoring_engine.home import EngineHome

_MAX_RECORD_BYTES: Final = 64 * 1024
REVOKED: Final = "license_revoked"
SUSPENDED: Final = "license_suspended"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    moment = datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        raise ValueError("time without zone")
    return moment


def _optional_iso(moment: datetime | None) -> str | None:
    return None if moment is None else _iso(moment)


class CorruptRecordError(ValueError):
    """A record exists but cannot be read."""


def _read(path: Path) -> dict[str, Any] | None:
    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_RECORD_BYTES + 1)
    except FileNotFoundError:
        return None
    if len(data) > _MAX_RECORD_BYTES:
        raise CorruptRecordError(f"{path} is larger than {_MAX_RECORD_BYTES} bytes")
    try:
        document = json.loads(data)
    except ValueError:
        raise CorruptRecordError(f"{path} is corrupt") from None
    if not isinstance(document, dict):
        raise CorruptRecordError(f"{path} is corrupt")
    return document


#### Engine id ####


def engine_id(home: EngineHome, now: datetime, *, create: bool) -> str | None:
    """This home's engine id; made (once) when ``create`` and there is none."""
    try:
        document = _read(home.engine_file)
    except CorruptRecordError:
        document = None
    if document is not None:
        value = document.get("engine_id")
        try:
            return str(uuid.UUID(str(value)))
        except ValueError:
            pass
    if not create:
        return None
    new_id = str(uuid.uuid4())
    atomic_write(home.engine_file, json_bytes({"engine_id": new_id, "created_at": _iso(now)}))
    return new_id


#### Activation ####

ACTIVE: Final = "active"
PENDING: Final = "pending"
REFUSED: Final = "refused"
DEACTIVATED: Final = "deactivated"


@dataclass(frozen=True)
class ActivationRecord:
    portal: str
    engine_id: str
    license_id: str
    status: str
    activation_id: str | None = None
    activated_at: datetime | None = None
    renewed_at: datetime | None = None
    lease_expires_at: datetime | None = None
    lease_verified: bool = False
    detail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "portal": self.portal,
            "engine_id": self.engine_id,
            "license_id": self.license_id,
            "status": self.status,
            "activation_id": self.activation_id,
            "activated_at": _optional_iso(self.activated_at),
            "renewed_at": _optional_iso(self.renewed_at),
            "lease_expires_at": _optional_iso(self.lease_expires_at),
            "lease_verified": self.lease_verified,
            "detail": self.detail,
        }

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> ActivationRecord:
        activation_id = document.get("activation_id")
        detail = document.get("detail")
        return cls(
            portal=str(document["portal"]),
            engine_id=str(document["engine_id"]),
            license_id=str(document["license_id"]),
            status=str(document["status"]),
            activation_id=None if activation_id is None else str(activation_id),
            activated_at=_time(document.get("activated_at")),
            renewed_at=_time(document.get("renewed_at")),
            lease_expires_at=_time(document.get("lease_expires_at")),
            lease_verified=document.get("lease_verified") is True,
            detail=None if detail is None else str(detail),
        )

    def is_active_for(self, portal: str, engine: str, license_id: str) -> bool:
        """Whether this is a live activation of exactly this portal, engine and license."""
        return (
            self.status == ACTIVE
            and (self.portal, self.engine_id, self.license_id) == (portal, engine, license_id)
            and self.activation_id is not None
        )


def read_activation(home: EngineHome) -> ActivationRecord | None:
    """The activation record, or None if there is none or it cannot be read."""
    try:
        document = _read(home.activation_file)
        return None if document is None else ActivationRecord.from_dict(document)
    except (CorruptRecordError, KeyError, TypeError, ValueError):
        return None


def write_activation(home: EngineHome, record: ActivationRecord, lease: str | None) -> None:
    if lease is not None:
        atomic_write(home.lease_file, lease.encode("ascii") + b"\n", mode=0o600)
    atomic_write(home.activation_file, json_bytes(record.to_dict()))


def read_lease(home: EngineHome) -> str | None:
    try:
        data = home.lease_file.read_bytes()[:_MAX_RECORD_BYTES]
    except FileNotFoundError:
        return None
    try:
        return data.decode("ascii").strip() or None
    except UnicodeDecodeError:
        return None


#### Updates ####


@dataclass(frozen=True)
class AvailableBundle:
    """The bundle the portal's signed channel index named at the last check."""

    channel: str
    name: str
    version: str
    target: str

    @property
    def label(self) -> str:
        return f"{self.name}-{self.version}"


@dataclass(frozen=True)
class UpdateRecord:
    last_check: datetime | None = None
    last_update: datetime | None = None
    last_attempt: datetime | None = None
    available: AvailableBundle | None = None
    last_error: str | None = None
    last_error_exit_code: int | None = None

    def to_dict(self) -> dict[str, Any]:
        available = self.available
        return {
            "last_check": _optional_iso(self.last_check),
            "last_update": _optional_iso(self.last_update),
            "last_attempt": _optional_iso(self.last_attempt),
            "available": None
            if available is None
            else {
                "channel": available.channel,
                "name": available.name,
                "version": available.version,
                "target": available.target,
            },
            "last_error": None
            if self.last_error is None
            else {"message": self.last_error, "exit_code": self.last_error_exit_code},
        }

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> UpdateRecord:
        available = document.get("available")
        error = document.get("last_error")
        return cls(
            last_check=_time(document.get("last_check")),
            last_update=_time(document.get("last_update")),
            last_attempt=_time(document.get("last_attempt")),
            available=None
            if available is None
            else AvailableBundle(
                channel=str(available["channel"]),
                name=str(available["name"]),
                version=str(available["version"]),
                target=str(available["target"]),
            ),
            last_error=None if error is None else str(error["message"]),
            last_error_exit_code=None if error is None else int(error["exit_code"]),
        )


def read_updates(home: EngineHome) -> UpdateRecord:
    """The update record (empty if there is none or it cannot be read: it only informs)."""
    try:
        document = _read(home.updates_file)
        return UpdateRecord() if document is None else UpdateRecord.from_dict(document)
    except (CorruptRecordError, KeyError, TypeError, ValueError):
        return UpdateRecord()


def write_updates(home: EngineHome, record: UpdateRecord) -> None:
    atomic_write(home.updates_file, json_bytes(record.to_dict()))


#### Refusals of the license ####


@dataclass(frozen=True)
class PortalDenial:
    code: str
    license_id: str | None
    observed_at: datetime | None
    detail: str | None = None
    portal: str | None = None

    @property
    def revoked(self) -> bool:
        return self.code == REVOKED

    def describe(self) -> str:
        what = "revoked" if self.revoked else "suspended"
        when = f" on {_iso(self.observed_at)}" if self.observed_at else ""
        detail = f" ({self.detail})" if self.detail else ""
        return f"license {self.license_id} was {what} by the portal{when}{detail}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "license_id": self.license_id,
            "observed_at": _optional_iso(self.observed_at),
            "detail": self.detail,
            "portal": self.portal,
        }


def read_denial(home: EngineHome) -> PortalDenial | None:
    """The recorded refusal; an unreadable record counts as a suspension of any license."""
    try:
        document = _read(home.denial_file)
    except CorruptRecordError:
        return PortalDenial(SUSPENDED, None, None, f"{home.denial_file} is unreadable")
    if document is None:
        return None
    try:
        code = str(document["code"])
        license_id = document.get("license_id")
        detail = document.get("detail")
        portal = document.get("portal")
        return PortalDenial(
            code=code if code in {REVOKED, SUSPENDED} else SUSPENDED,
            license_id=None if license_id is None else str(license_id),
            observed_at=_time(document.get("observed_at")),
            detail=None if detail is None else str(detail),
            portal=None if portal is None else str(portal),
        )
    except (KeyError, TypeError, ValueError):
        return PortalDenial(SUSPENDED, None, None, f"{home.denial_file} is unreadable")


def denial_for(home: EngineHome, license_id: str) -> PortalDenial | None:
    """The refusal that applies to ``license_id`` (an unreadable record applies to any)."""
    denial = read_denial(home)
    if denial is None or denial.license_id not in {None, license_id}:
        return None
    return denial


def record_denial(
    home: EngineHome,
    code: str,
    license_id: str,
    detail: str | None,
    now: datetime,
    portal: str,
) -> PortalDenial:
    """Remember a refusal; the first time the portal said so is kept."""
    previous = read_denial(home)
    observed = now
    if previous is not None and (previous.code, previous.license_id) == (code, license_id):
        observed = previous.observed_at or now
    denial = PortalDenial(code, license_id, observed, detail, portal)
    atomic_write(home.denial_file, json_bytes(denial.to_dict()))
    return denial


def clear_denial(home: EngineHome) -> None:
    home.denial_file.unlink(missing_ok=True)
