"""The portal's TUF update repository and signing keys, around ``licensing.repository``.

The repository lives in ``$VIGIL_PORTAL_HOME/repository`` and the keys in
``$VIGIL_PORTAL_HOME/keys`` (``portal.repository.keystore``). What this module adds
to the library:

- ``initialise_portal`` is idempotent: it creates only what is missing (keys,
  the repository with its first root, the ``licensing/keys.json`` target) and
  reports what already existed. It never replaces a key. It refuses to go on
  when the repository exists but a TUF role's key is missing or is not the one
  the current root lists: that needs the operator's backup, not a new key.
- ``rotate_key`` writes the new key file first and removes it again if the
  rotation fails, so the current key on disk is always one the repository uses.
  Rotating the license key adds the new public key to ``licensing/keys.json``
  and keeps the old ones, so licenses already issued still verify.
- Every change is recorded as an audit event in the caller's session.
- ``served_target`` decides what an engine may download (see its docstring):
  entitlement is enforced on target files, not on metadata, which lists every
  channel's targets and is no secret.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from licensing.repository import Repository
from licensing.targets import LICENSE_KEYS_TARGET, REVOCATIONS_TARGET, channel_index_target
from portal.errors import ChannelNotEntitledError, ConfigurationError, TargetNotFoundError
from portal.events.service import record_event
from portal.events.tags import EventTag
from portal.repository.keystore import TUF_ROLES, KeyRole, KeyStore, StoredKey

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping
    from pathlib import Path

    from sqlalchemy.orm import Session
    from tuf.api.metadata import TargetFile  # type: ignore[attr-defined]

    from portal.settings import Settings

# Targets every licensed engine may download, by path and the kind recorded in their custom data.
UNRESTRICTED_TARGETS: Final = {
    LICENSE_KEYS_TARGET: "license-keys",
    REVOCATIONS_TARGET: "revocations",
}
_SEGMENT: Final = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,254}")
_HASH_PREFIXED: Final = re.compile(r"([0-9a-f]{64})\.(.+)")
_MEDIA_TYPES: Final = {".json": "application/json", ".tar": "application/x-tar"}


def keystore_for(settings: Settings) -> KeyStore:
    return KeyStore(
        settings.keys_dir,
        settings.passphrase(),
        allow_unencrypted=settings.is_development,
    )


def repository_exists(settings: Settings) -> bool:
    metadata = settings.repository_dir / "metadata"
    return metadata.is_dir() and any(metadata.glob("*.root.json"))


def open_repository(settings: Settings, *, signing: bool = True) -> Repository:
    """The portal's repository; with ``signing`` it holds the current TUF role keys.

    Raises:
        ConfigurationError: The portal was not initialised.
        SigningKeyError: A key cannot be decrypted.
    """
    if not repository_exists(settings):
        raise ConfigurationError(
            f"no update repository in {settings.repository_dir}: run 'vigil-portal init'"
        )
    keys = []
    if signing:
        keystore = keystore_for(settings)
        keys = [keystore.load_current(role).key for role in TUF_ROLES]
    return Repository(settings.repository_dir, keys, expiries=settings.repository_expiries)


def license_signing_key(settings: Settings) -> StoredKey:
    """The license key new tokens are signed with (the newest one)."""
    return keystore_for(settings).load_current(KeyRole.LICENSE)


#### init ####


@dataclass
class InitReport:
    """What ``initialise_portal`` found and did, for the CLI to show."""

    created_keys: list[KeyRole] = field(default_factory=list)
    existing_keys: list[KeyRole] = field(default_factory=list)
    repository_created: bool = False
    license_keys_published: bool = False
    root_version: int = 0
    keys_encrypted: bool = True


def _check_keys_match_root(repository: Repository, keys: dict[KeyRole, StoredKey]) -> None:
    root = repository.trusted_root().signed
    for role in TUF_ROLES:
        if keys[role].key_id not in root.roles[role.value].keyids:
            raise ConfigurationError(
                f"{keys[role].path} is not a {role.value} key of the repository's root: "
                "restore the keys directory from backup"
            )


def initialise_portal(session: Session, settings: Settings, *, actor: str) -> InitReport:
    """Create whatever of the keys and the repository does not exist yet."""
    keystore = keystore_for(settings)
    report = InitReport(keys_encrypted=keystore.encrypted)
    exists = repository_exists(settings)
    missing_tuf_keys = [role.value for role in TUF_ROLES if not keystore.has_key(role)]
    if exists and missing_tuf_keys:
        raise ConfigurationError(
            f"the repository exists but keys are missing for {', '.join(missing_tuf_keys)}: "
            f"restore {settings.keys_dir} from backup"
        )
    settings.portal_home.mkdir(mode=0o700, parents=True, exist_ok=True)

    keys: dict[KeyRole, StoredKey] = {}
    for role in KeyRole:
        if keystore.has_key(role):
            keys[role] = keystore.load_current(role)
            report.existing_keys.append(role)
            continue
        keys[role] = keystore.create(role)
        report.created_keys.append(role)
        record_event(
            session,
            EventTag.KEY_CREATED,
            actor=actor,
            subject_id=role.value,
            payload={"role": role.value, "key_id": keys[role].key_id},
        )

    if exists:
        repository = open_repository(settings)
        _check_keys_match_root(repository, keys)
    else:
        repository = Repository.create(
            settings.repository_dir,
            {role.value: [keys[role].key] for role in TUF_ROLES},
            expiries=settings.repository_expiries,
        )
        report.repository_created = True
        record_event(
            session,
            EventTag.REPOSITORY_CREATED,
            actor=actor,
            payload={
                "root_version": repository.versions().root,
                "root_key_ids": list(repository.trusted_root().signed.roles["root"].keyids),
            },
        )

    license_key = keys[KeyRole.LICENSE]
    published = repository.license_keys()
    if license_key.key_id not in published.keys:
        key_set = repository.set_license_keys(
            [*published.keys.values(), license_key.key.public_key()]
        )
        repository.publish()
        report.license_keys_published = True
        record_event(
            session,
            EventTag.REPOSITORY_LICENSE_KEYS_PUBLISHED,
            actor=actor,
            subject_id=LICENSE_KEYS_TARGET,
            payload={"version": key_set.version, "key_ids": sorted(key_set.keys)},
        )
    report.root_version = repository.versions().root
    return report


#### keys rotate ####


@dataclass(frozen=True)
class KeyRotation:
    role: KeyRole
    old_key_id: str
    new_key_id: str
    new_key_path: Path
    root_version: int


def rotate_key(session: Session, settings: Settings, role: KeyRole, *, actor: str) -> KeyRotation:
    """Replace the role's current key without breaking installed engines.

    TUF roles: a new root lists the new key, signed by the old and the new root
    keys, and the role's metadata is re-signed. License key: new licenses are
    signed with the new key; ``licensing/keys.json`` lists it next to the old
    keys, which keep verifying the licenses they signed.
    """
    keystore = keystore_for(settings)
    repository = open_repository(settings)
    old = keystore.load_current(role)
    root_version = repository.versions().root
    new = keystore.create(role)
    try:
        if role is KeyRole.LICENSE:
            published = repository.license_keys()
            repository.set_license_keys([*published.keys.values(), new.key.public_key()])
            repository.publish()
        else:
            repository.rotate_key(role.value, new.key)
    except BaseException:
        # Once a root listing the new key is written, the key must stay: the
        # library re-signs what the rotation left behind on the next refresh.
        next_root = settings.repository_dir / "metadata" / f"{root_version + 1}.root.json"
        if not next_root.exists():
            keystore.discard(new)
        raise
    rotation = KeyRotation(
        role=role,
        old_key_id=old.key_id,
        new_key_id=new.key_id,
        new_key_path=new.path,
        root_version=repository.versions().root,
    )
    record_event(
        session,
        EventTag.KEY_ROTATED,
        actor=actor,
        subject_id=role.value,
        payload={
            "role": role.value,
            "old_key_id": rotation.old_key_id,
            "new_key_id": rotation.new_key_id,
            "root_version": rotation.root_version,
        },
    )
    return rotation


#### repo root / refresh ####


def write_root(settings: Settings, out: Path) -> int:
    """Write the current root metadata to ``out``; return its version."""
    repository = open_repository(settings, signing=False)
    out.write_bytes(repository.root_bytes())
    return repository.versions().root


def refresh_timestamp(settings: Settings) -> list[str]:
    """Re-sign timestamp (and snapshot/targets near expiry); for a schedule."""
    return open_repository(settings).refresh_timestamp()


#### Serving targets to licensed engines ####


@dataclass(frozen=True)
class ServedTarget:
    """A target file an engine may download, as its request named it."""

    target_path: str
    file: Path
    sha256: str
    length: int

    @property
    def media_type(self) -> str:
        return _MEDIA_TYPES.get(self.file.suffix, "application/octet-stream")


def _check_entitled(target_path: str, info: TargetFile, channels: Collection[str]) -> None:
    custom = info.custom if isinstance(info.custom, dict) else {}
    kind = custom.get("kind")
    if UNRESTRICTED_TARGETS.get(target_path) == kind:
        return
    if kind == "channel" and any(
        channel_index_target(channel) == target_path for channel in channels
    ):
        return
    if kind == "bundle" and custom.get("channel") in channels:
        return
    raise ChannelNotEntitledError("the license does not entitle this target's channel")


def served_target(
    targets: Mapping[str, TargetFile],
    targets_dir: Path,
    requested: str,
    channels: Collection[str],
) -> ServedTarget:
    """The file behind ``requested``, a consistent-snapshot target path as
    python-tuf asks for it (``<dir>/<SHA256>.<name>``), if the license may have it.

    Served: the license keys and the revocation list to every licensed engine;
    ``channels/<c>.json`` and bundles of channel ``c`` only when ``c`` is in the
    license's ``channels``; nothing else. Only targets of the current signed
    targets metadata are served, with the hash it lists, so no request can
    name a file the metadata does not (no ``..``, no other directory).

    Raises:
        TargetNotFoundError: Malformed, unknown, or not the current hash.
        ChannelNotEntitledError: A target of a channel the license does not grant.
    """
    segments = requested.split("/")
    hashed = _HASH_PREFIXED.fullmatch(segments[-1])
    if hashed is None or not all(_SEGMENT.fullmatch(segment) for segment in segments):
        raise TargetNotFoundError("there is no such target")
    sha256, name = hashed.groups()
    target_path = "/".join([*segments[:-1], name])
    info = targets.get(target_path)
    if info is None or not hmac.compare_digest(str(info.hashes.get("sha256", "")), sha256):
        raise TargetNotFoundError("there is no such target")
    _check_entitled(target_path, info, channels)
    return ServedTarget(
        target_path=target_path,
        file=targets_dir.joinpath(*segments),
        sha256=sha256,
        length=info.length,
    )
