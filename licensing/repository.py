# Copyright 2026 Vigil contributors
# SPDX-License-Identifier: Apache-2.0
"""The portal's TUF update repository, built with ``tuf.api.metadata``.

Layout of a repository directory (consistent snapshots, served under ``/tuf/``)::

    metadata/N.root.json        every root version, kept forever (clients walk the chain)
    metadata/N.targets.json     every targets version
    metadata/N.snapshot.json    every snapshot version
    metadata/timestamp.json     the current timestamp (the only unversioned file)
    targets/<dir>/<SHA256>.<name>  target files, prefixed by their hash

Rules this module keeps:

- Every metadata file is written atomically, and in dependency order:
  targets, then snapshot, then timestamp last. A crash leaves clients on the
  previous consistent state, never a half-written one.
- Every version only grows; snapshot lists the targets version with its length
  and SHA-256; timestamp lists the snapshot version with its length and SHA-256.
- Each role is signed by keys the current root lists for it, and signing
  fails (``SigningKeyError``) unless the role's threshold is met. Changes are
  made on copies, so a failed signing leaves the in-memory state untouched.
- A new root version is signed by a threshold of the previous root's keys
  AND a threshold of its own, so clients holding any older root can walk the
  chain to it (TUF §5.3.4). This is what makes key rotation safe.
- Rotating a non-root key first publishes a root listing the new key, then
  re-signs that role (and everything that refers to it) with the new key.
- Expiry periods are parameters (``RepositoryExpiries``); the clock is read
  once per operation through an injectable ``clock``.
- Target changes (``add_target``, ``set_license_keys``, ``revoke_license``...)
  are staged in memory and become visible only with ``publish()``.
- Writers in several processes (web server, timestamp scheduler, CLI) are
  serialized by an exclusive lock on ``<dir>/.lock`` and start from the state
  on disk. A staged change whose target was changed by another publisher
  since it was staged is refused at ``publish()``, never silently lost.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import hashlib
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from securesystemslib.exceptions import UnverifiedSignatureError
from tuf.api.exceptions import RepositoryError as TufRepositoryError

# tuf.api.metadata re-exports these payload classes without ``__all__``.
from tuf.api.metadata import (  # type: ignore[attr-defined]
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    T,
    TargetFile,
    Targets,
    Timestamp,
)

from licensing._tar import is_safe_member_name
from licensing._util import atomic_write, require_aware
from licensing.bundles import read_bundle
from licensing.config import DEFAULT_CONFIG, LicensingConfig
from licensing.exceptions import RepositoryError, SigningKeyError
from licensing.keys import tuf_public_key, tuf_signer
from licensing.targets import (
    LICENSE_KEYS_TARGET,
    REVOCATIONS_TARGET,
    ChannelIndex,
    LicenseKeySet,
    RevocationList,
    bundle_target_path,
    channel_index_target,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )
    from securesystemslib.signer import CryptoSigner  # type: ignore[attr-defined]

logger = logging.getLogger(__name__)

TOP_LEVEL_ROLES: Final = (Root.type, Targets.type, Snapshot.type, Timestamp.type)
_VERSIONED_ROOT: Final = re.compile(r"([1-9][0-9]*)\.root\.json")


@dataclass(frozen=True)
class RepositoryExpiries:
    """How long each role's metadata stays valid after it is signed."""

    root: timedelta = timedelta(days=365)
    targets: timedelta = timedelta(days=90)
    snapshot: timedelta = timedelta(days=7)
    timestamp: timedelta = timedelta(days=1)

    def __post_init__(self) -> None:
        for role in TOP_LEVEL_ROLES:
            if getattr(self, role) <= timedelta(0):
                raise ValueError(f"{role} expiry must be positive")

    def for_role(self, role: str) -> timedelta:
        value: timedelta = getattr(self, role)
        return value


@dataclass(frozen=True)
class RepositoryVersions:
    root: int
    targets: int
    snapshot: int
    timestamp: int


def _default_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class _StagedChange:
    """A staged target change and the published content it was based on."""

    info: TargetFile | None  # None: remove the target
    base_sha256: str | None  # None: the target was not published


def _check_target_path(path: str) -> None:
    if not is_safe_member_name(path):
        raise ValueError(f"target path {path!r} must be relative segments of [A-Za-z0-9._-]")


class Repository:
    """A TUF repository in a directory, holding the portal's signing keys.

    Open an existing repository with ``Repository(directory, private_keys)``;
    make a new one with ``Repository.create``. ``private_keys`` may hold more
    keys than the repository uses; each role is signed with the ones its
    current root lists.
    """

    def __init__(
        self,
        directory: Path,
        private_keys: Iterable[Ed25519PrivateKey],
        *,
        expiries: RepositoryExpiries | None = None,
        clock: Callable[[], datetime] | None = None,
        config: LicensingConfig = DEFAULT_CONFIG,
    ) -> None:
        self.directory = directory
        self.metadata_dir = directory / "metadata"
        self.targets_dir = directory / "targets"
        self._expiries = expiries or RepositoryExpiries()
        self._clock = clock or _default_clock
        self._config = config
        self._signers: dict[str, CryptoSigner] = {}
        for key in private_keys:
            signer = tuf_signer(key)
            self._signers[signer.public_key.keyid] = signer
        self._pending: dict[str, _StagedChange] = {}
        self._load()

    #### Creation and loading ####

    @classmethod
    def create(
        cls,
        directory: Path,
        role_keys: Mapping[str, Sequence[Ed25519PrivateKey]],
        *,
        root_threshold: int = 1,
        expiries: RepositoryExpiries | None = None,
        clock: Callable[[], datetime] | None = None,
        config: LicensingConfig = DEFAULT_CONFIG,
    ) -> Repository:
        """Create version 1 of every role and return the opened repository.

        Args:
            directory: Where to create ``metadata/`` and ``targets/``.
            role_keys: For each of ``root``, ``targets``, ``snapshot`` and
                ``timestamp``, the private keys of that role (one or more).
            root_threshold: How many root keys must sign a root version.
            expiries: Expiry periods; defaults to ``RepositoryExpiries()``.
            clock: Source of the current time (UTC-aware).
            config: Size limits.

        Raises:
            RepositoryError: The directory already holds metadata.
            ValueError: A role has no key, or the threshold is out of range.
        """
        if set(role_keys) != set(TOP_LEVEL_ROLES):
            raise ValueError(f"role_keys must name exactly the roles {TOP_LEVEL_ROLES}")
        if any(not keys for keys in role_keys.values()):
            raise ValueError("every role needs at least one key")
        if not 1 <= root_threshold <= len(role_keys[Root.type]):
            raise ValueError("root_threshold must be between 1 and the number of root keys")
        metadata_dir = directory / "metadata"
        if metadata_dir.exists() and any(metadata_dir.iterdir()):
            raise RepositoryError(f"{metadata_dir} already holds metadata")

        expiries = expiries or RepositoryExpiries()
        now = require_aware((clock or _default_clock)(), "clock()")
        root = Root(expires=now + expiries.root, consistent_snapshot=True)
        for role, keys in role_keys.items():
            for key in keys:
                root.add_key(tuf_public_key(key), role)
        root.roles[Root.type].threshold = root_threshold

        all_keys = [key for keys in role_keys.values() for key in keys]
        signers = {signer.public_key.keyid: signer for signer in map(tuf_signer, all_keys)}
        root_md = Metadata(root)
        _sign_root(root_md, None, signers)
        atomic_write(metadata_dir / "1.root.json", root_md.to_bytes())

        def signed_by_role(md: Metadata[T], role: str) -> bytes:
            _sign_role(md, role, root, signers)
            return md.to_bytes()

        targets_bytes = signed_by_role(
            Metadata(Targets(expires=now + expiries.targets)), Targets.type
        )
        atomic_write(metadata_dir / "1.targets.json", targets_bytes)
        snapshot = Snapshot(expires=now + expiries.snapshot)
        snapshot.meta[f"{Targets.type}.json"] = _meta_for(1, targets_bytes)
        snapshot_bytes = signed_by_role(Metadata(snapshot), Snapshot.type)
        atomic_write(metadata_dir / "1.snapshot.json", snapshot_bytes)
        timestamp = Timestamp(
            expires=now + expiries.timestamp, snapshot_meta=_meta_for(1, snapshot_bytes)
        )
        atomic_write(
            metadata_dir / "timestamp.json",
            signed_by_role(Metadata(timestamp), Timestamp.type),
        )
        (directory / "targets").mkdir(parents=True, exist_ok=True)
        return cls(directory, all_keys, expiries=expiries, clock=clock, config=config)

    def _read_metadata(self, filename: str, role: type[T], delegator: Root | None) -> Metadata[T]:
        path = self.metadata_dir / filename
        try:
            data = path.read_bytes()
            md = Metadata[T].from_bytes(data)
        except FileNotFoundError:
            raise RepositoryError(f"repository metadata {filename} is missing") from None
        except (TufRepositoryError, ValueError, KeyError, TypeError) as error:
            raise RepositoryError(f"repository metadata {filename} is invalid: {error}") from None
        if not isinstance(md.signed, role):
            raise RepositoryError(f"{filename} is not {role.type} metadata")
        verifier = delegator if delegator is not None else md.signed
        if not isinstance(verifier, Root):
            raise RepositoryError(f"{filename} has no root to verify it")
        try:
            verifier.verify_delegate(role.type, md.signed_bytes, md.signatures)
        except (TufRepositoryError, ValueError) as error:
            raise RepositoryError(f"{filename} is not correctly signed: {error}") from None
        return md

    def _load(self) -> None:
        versions = [
            int(match.group(1))
            for path in self.metadata_dir.glob("*.root.json")
            if (match := _VERSIONED_ROOT.fullmatch(path.name))
        ]
        if not versions:
            raise RepositoryError(f"no root metadata in {self.metadata_dir}")
        latest = max(versions)
        self._root = self._read_metadata(f"{latest}.root.json", Root, None)
        previous = None
        if latest > 1:
            previous = self._read_metadata(f"{latest - 1}.root.json", Root, None).signed
        self._needs_resign: set[str] = set()
        self._timestamp = self._read_role("timestamp.json", Timestamp, previous)
        snapshot_version = self._timestamp.signed.snapshot_meta.version
        self._snapshot = self._read_role(f"{snapshot_version}.snapshot.json", Snapshot, previous)
        targets_meta = self._snapshot.signed.meta.get(f"{Targets.type}.json")
        if targets_meta is None:
            raise RepositoryError("snapshot does not list targets.json")
        self._targets = self._read_role(f"{targets_meta.version}.targets.json", Targets, previous)

    def _read_role(self, filename: str, role: type[T], previous_root: Root | None) -> Metadata[T]:
        """Read a non-root role, verified by the current root.

        A role still signed only by keys of the previous root is the trace of
        a key rotation interrupted between writing the new root and re-signing
        the role: it is loaded and marked for ``refresh_timestamp()`` to
        re-sign, so the scheduler repairs the repository.
        """
        try:
            return self._read_metadata(filename, role, self._root.signed)
        except RepositoryError:
            if previous_root is None:
                raise
            md = self._read_metadata(filename, role, previous_root)
            logger.warning("%s is signed with a rotated-out key; it will be re-signed", filename)
            self._needs_resign.add(role.type)
            return md

    #### Reading ####

    def versions(self) -> RepositoryVersions:
        return RepositoryVersions(
            root=self._root.signed.version,
            targets=self._targets.signed.version,
            snapshot=self._snapshot.signed.version,
            timestamp=self._timestamp.signed.version,
        )

    def root_bytes(self, version: int | None = None) -> bytes:
        """The exact bytes of root ``version`` (default: the current root),
        as given to engines for ``vigil-engine init --root``.

        Raises:
            RepositoryError: No such version.
        """
        version = self._root.signed.version if version is None else version
        path = self.metadata_dir / f"{version}.root.json"
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise RepositoryError(f"root version {version} does not exist") from None

    def trusted_root(self) -> Metadata[Root]:
        """A copy of the current root metadata."""
        return copy.deepcopy(self._root)

    def metadata_file(self, role: str) -> Path:
        """Path of the current metadata file of a top-level role."""
        versions = self.versions()
        if role == Timestamp.type:
            return self.metadata_dir / "timestamp.json"
        if role not in TOP_LEVEL_ROLES:
            raise ValueError(f"unknown role {role!r}")
        return self.metadata_dir / f"{getattr(versions, role)}.{role}.json"

    def published_targets(self) -> dict[str, TargetFile]:
        """The targets listed by the published targets metadata."""
        return dict(self._targets.signed.targets)

    def target_file_path(self, target_path: str) -> Path:
        """Where the published target's (hash-prefixed) file is stored.

        Raises:
            RepositoryError: The target is not published.
        """
        info = self._targets.signed.targets.get(target_path)
        if info is None:
            raise RepositoryError(f"target {target_path!r} is not published")
        return self._consistent_path(target_path, info.hashes["sha256"])

    def _consistent_path(self, target_path: str, sha256: str) -> Path:
        directory, _, basename = target_path.rpartition("/")
        return self.targets_dir / directory / f"{sha256}.{basename}"

    def _current_target_bytes(self, target_path: str) -> bytes | None:
        if target_path in self._pending:
            info = self._pending[target_path].info
        else:
            info = self._targets.signed.targets.get(target_path)
        if info is None:
            return None
        path = self._consistent_path(target_path, info.hashes["sha256"])
        try:
            data = path.read_bytes()
            info.verify_length_and_hashes(data)
        except (OSError, TufRepositoryError) as error:
            raise RepositoryError(f"stored target {target_path!r} is unusable: {error}") from None
        return data

    def license_keys(self) -> LicenseKeySet:
        """The license key set as staged or published (empty if none yet)."""
        data = self._current_target_bytes(LICENSE_KEYS_TARGET)
        return LicenseKeySet() if data is None else LicenseKeySet.from_bytes(data, self._config)

    def revocations(self) -> RevocationList:
        """The revocation list as staged or published (empty if none yet)."""
        data = self._current_target_bytes(REVOCATIONS_TARGET)
        return RevocationList() if data is None else RevocationList.from_bytes(data, self._config)

    def channel_index(self, channel: str) -> ChannelIndex | None:
        data = self._current_target_bytes(channel_index_target(channel))
        return None if data is None else ChannelIndex.from_bytes(data, self._config)

    #### Staging target changes ####

    def add_target(
        self,
        target_path: str,
        local_file: Path,
        custom: Mapping[str, Any] | None = None,
    ) -> TargetFile:
        """Copy ``local_file`` into the repository as ``target_path`` (staged).

        The hash is computed from the stored copy, so a source file changing
        during the copy cannot make metadata and content disagree.
        """
        _check_target_path(target_path)
        self._load()
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self.targets_dir, prefix=".incoming-")
        tmp_path = Path(tmp_name)
        try:
            with local_file.open("rb") as source, os.fdopen(fd, "wb") as tmp:
                shutil.copyfileobj(source, tmp)
            with tmp_path.open("rb") as handle:
                info = TargetFile.from_data(target_path, handle, ["sha256"])
            destination = self._consistent_path(target_path, info.hashes["sha256"])
            destination.parent.mkdir(parents=True, exist_ok=True)
            tmp_path.chmod(0o644)
            tmp_path.replace(destination)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp_path.unlink()
        return self._stage(info, custom)

    def _add_target_bytes(
        self, target_path: str, data: bytes, custom: Mapping[str, Any] | None = None
    ) -> TargetFile:
        _check_target_path(target_path)
        info = TargetFile.from_data(target_path, data, ["sha256"])
        atomic_write(self._consistent_path(target_path, info.hashes["sha256"]), data)
        return self._stage(info, custom)

    def _published_sha256(self, target_path: str) -> str | None:
        info = self._targets.signed.targets.get(target_path)
        return None if info is None else info.hashes["sha256"]

    def _stage_change(self, target_path: str, info: TargetFile | None) -> None:
        # A path staged twice keeps the base of its first staging.
        previous = self._pending.get(target_path)
        base = previous.base_sha256 if previous else self._published_sha256(target_path)
        self._pending[target_path] = _StagedChange(info=info, base_sha256=base)

    def _stage(self, info: TargetFile, custom: Mapping[str, Any] | None) -> TargetFile:
        if custom:
            info.unrecognized_fields["custom"] = dict(custom)
        self._stage_change(info.path, info)
        return info

    def remove_target(self, target_path: str) -> None:
        """Stage the removal of a published target (its file stays for
        clients still on an older snapshot).
        """
        self._load()
        staged = self._pending.get(target_path)
        exists = staged.info is not None if staged else target_path in self._targets.signed.targets
        if not exists:
            raise RepositoryError(f"target {target_path!r} does not exist")
        self._stage_change(target_path, None)

    def set_license_keys(self, public_keys: Iterable[Ed25519PublicKey]) -> LicenseKeySet:
        """Stage ``licensing/keys.json`` listing exactly ``public_keys``."""
        self._load()
        key_set = LicenseKeySet.of(public_keys, version=self.license_keys().version + 1)
        self._add_target_bytes(LICENSE_KEYS_TARGET, key_set.to_bytes(), {"kind": "license-keys"})
        return key_set

    def revoke_license(
        self, license_id: str, reason: str, *, revoked_at: datetime | None = None
    ) -> RevocationList:
        """Stage a revocation list that also lists ``license_id``."""
        self._load()
        current = self.revocations()
        updated = current.with_revocation(license_id, reason, revoked_at or self._clock())
        if updated is not current:
            self._add_target_bytes(REVOCATIONS_TARGET, updated.to_bytes(), {"kind": "revocations"})
        return updated

    def add_bundle(self, bundle_file: Path, *, channel: str) -> str:
        """Stage a bundle and point ``channel`` at it; return its target path.

        The bundle is verified first (``read_bundle``) and its name and
        version are taken from its manifest, so metadata cannot mislabel it.
        """
        with tempfile.TemporaryDirectory() as scratch:
            bundle = read_bundle(bundle_file, Path(scratch) / "bundle", config=self._config)
        manifest = bundle.manifest
        target_path = bundle_target_path(channel, manifest.name, manifest.version)
        custom = {
            "kind": "bundle",
            "channel": channel,
            "name": manifest.name,
            "version": manifest.version,
        }
        self.add_target(target_path, bundle_file, custom)
        self._point_channel(channel, manifest.name, manifest.version, target_path)
        return target_path

    def promote_bundle(self, target_path: str, *, channel: str) -> str:
        """Stage a published bundle on another channel; return its new path."""
        self._load()
        info = self._targets.signed.targets.get(target_path)
        custom = info.custom if info is not None else None
        if not isinstance(custom, dict) or custom.get("kind") != "bundle":
            raise RepositoryError(f"{target_path!r} is not a published bundle")
        new_path = bundle_target_path(channel, custom["name"], custom["version"])
        self.add_target(
            new_path, self.target_file_path(target_path), {**custom, "channel": channel}
        )
        self._point_channel(channel, custom["name"], custom["version"], new_path)
        return new_path

    def _point_channel(self, channel: str, name: str, version: str, target_path: str) -> None:
        previous = self.channel_index(channel)
        index = ChannelIndex(
            channel=channel,
            name=name,
            bundle_version=version,
            target=target_path,
            version=1 if previous is None else previous.version + 1,
        )
        self._add_target_bytes(channel_index_target(channel), index.to_bytes(), {"kind": "channel"})

    #### Signing and publishing ####

    def _now(self) -> datetime:
        return require_aware(self._clock(), "clock()")

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Serialize writers across processes (portal server, scheduler and
        CLI) and start each write from the state on disk.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / ".lock").open("a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                self._load()
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _check_no_conflicts_in(self, changes: Mapping[str, _StagedChange]) -> None:
        """Refuse staged changes whose target changed since they were staged
        (e.g. two processes each revoking a license from the same list).
        """
        for path, change in changes.items():
            if change.base_sha256 != self._published_sha256(path):
                raise RepositoryError(
                    f"{path!r} was changed by another publisher since it was staged; "
                    "stage the change again"
                )

    def _write_targets(
        self, now: datetime, changes: Mapping[str, _StagedChange]
    ) -> Metadata[Targets]:
        md = copy.deepcopy(self._targets)
        for path, change in changes.items():
            if change.info is None:
                md.signed.targets.pop(path, None)
            else:
                md.signed.targets[path] = change.info
        md.signed.version += 1
        md.signed.expires = now + self._expiries.targets
        _sign_role(md, Targets.type, self._root.signed, self._signers)
        atomic_write(self.metadata_dir / f"{md.signed.version}.targets.json", md.to_bytes())
        return md

    def _write_snapshot(self, now: datetime, targets: Metadata[Targets]) -> Metadata[Snapshot]:
        md = copy.deepcopy(self._snapshot)
        md.signed.meta[f"{Targets.type}.json"] = _meta_for(
            targets.signed.version,
            (self.metadata_dir / f"{targets.signed.version}.targets.json").read_bytes(),
        )
        md.signed.version += 1
        md.signed.expires = now + self._expiries.snapshot
        _sign_role(md, Snapshot.type, self._root.signed, self._signers)
        atomic_write(self.metadata_dir / f"{md.signed.version}.snapshot.json", md.to_bytes())
        return md

    def _write_timestamp(self, now: datetime, snapshot: Metadata[Snapshot]) -> Metadata[Timestamp]:
        md = copy.deepcopy(self._timestamp)
        md.signed.snapshot_meta = _meta_for(
            snapshot.signed.version,
            (self.metadata_dir / f"{snapshot.signed.version}.snapshot.json").read_bytes(),
        )
        md.signed.version += 1
        md.signed.expires = now + self._expiries.timestamp
        _sign_role(md, Timestamp.type, self._root.signed, self._signers)
        atomic_write(self.metadata_dir / "timestamp.json", md.to_bytes())
        return md

    def _cascade(
        self,
        now: datetime,
        *,
        targets: bool,
        snapshot: bool,
        changes: Mapping[str, _StagedChange] | None = None,
    ) -> None:
        """Re-sign targets (optionally, applying ``changes``), snapshot
        (optionally) and timestamp, committing each in memory only once its
        file is written.
        """
        if targets:
            self._targets = self._write_targets(now, changes or {})
        if targets or snapshot:
            self._snapshot = self._write_snapshot(now, self._targets)
        self._timestamp = self._write_timestamp(now, self._snapshot)

    def publish(self) -> RepositoryVersions:
        """Publish staged target changes: new targets, snapshot and timestamp.

        Raises:
            RepositoryError: Another publisher changed a staged target meanwhile
                (nothing is published and the staged changes are dropped).
            SigningKeyError: A role's key is not held (the changes stay staged).
        """
        with self._exclusive():
            try:
                self._check_no_conflicts_in(self._pending)
            except RepositoryError:
                self._pending = {}
                raise
            self._cascade(self._now(), targets=True, snapshot=True, changes=self._pending)
            self._pending = {}
        return self.versions()

    def refresh_timestamp(self) -> list[str]:
        """Re-sign timestamp, and any of targets and snapshot that would expire
        within one timestamp period or that are still signed with a rotated-out
        key. Staged target changes are not published.

        Call on a schedule more frequent than the timestamp expiry.

        Returns:
            The roles that were re-signed.
        """
        with self._exclusive():
            now = self._now()
            horizon = now + self._expiries.timestamp
            resign_targets = (
                self._targets.signed.expires <= horizon or Targets.type in self._needs_resign
            )
            resign_snapshot = (
                resign_targets
                or self._snapshot.signed.expires <= horizon
                or Snapshot.type in self._needs_resign
            )
            self._cascade(now, targets=resign_targets, snapshot=resign_snapshot)
        resigned = [Timestamp.type]
        if resign_snapshot:
            resigned.insert(0, Snapshot.type)
        if resign_targets:
            resigned.insert(0, Targets.type)
        return resigned

    def _write_root(self, new_root: Root) -> None:
        md = Metadata(new_root)
        _sign_root(md, self._root.signed, self._signers)
        atomic_write(self.metadata_dir / f"{new_root.version}.root.json", md.to_bytes())
        self._root = md

    def resign_root(self) -> int:
        """Publish a new root version with the same keys and a fresh expiry."""
        with self._exclusive():
            new_root = copy.deepcopy(self._root.signed)
            new_root.version += 1
            new_root.expires = self._now() + self._expiries.root
            self._write_root(new_root)
        return new_root.version

    def rotate_key(
        self,
        role: str,
        new_key: Ed25519PrivateKey,
        *,
        old_keyid: str | None = None,
    ) -> str:
        """Replace one key of ``role`` by ``new_key``; return the new TUF key id.

        A new root version lists the new key instead of the old one; it is
        signed by the previous root's keys and by the new root's keys, so
        installed engines verify the chain. For a non-root role the role's
        metadata (and the metadata that refers to it) is then re-signed with
        the new key. ``old_keyid`` may be omitted when the role has one key.

        Raises:
            ValueError: Unknown role, or ``old_keyid`` missing or not of the role.
            SigningKeyError: The signing thresholds cannot be met with the keys held.
        """
        if role not in TOP_LEVEL_ROLES:
            raise ValueError(f"unknown role {role!r}")
        with self._exclusive():
            return self._rotate_key(role, new_key, old_keyid)

    def _rotate_key(self, role: str, new_key: Ed25519PrivateKey, old_keyid: str | None) -> str:
        current = self._root.signed
        keyids = current.roles[role].keyids
        if old_keyid is None:
            if len(keyids) != 1:
                raise ValueError(f"{role} has {len(keyids)} keys: name the one to replace")
            old_keyid = keyids[0]
        if old_keyid not in keyids:
            raise ValueError(f"key {old_keyid} is not a {role} key")

        new_public = tuf_public_key(new_key)
        if new_public.keyid in keyids:
            raise ValueError(f"the new key is already a {role} key")
        now = self._now()
        new_root = copy.deepcopy(current)
        new_root.revoke_key(old_keyid, role)
        new_root.add_key(new_public, role)
        new_root.version += 1
        new_root.expires = now + self._expiries.root

        signer = tuf_signer(new_key)
        self._signers[new_public.keyid] = signer
        self._write_root(new_root)

        if role == Targets.type:
            self._cascade(now, targets=True, snapshot=True)
        elif role == Snapshot.type:
            self._cascade(now, targets=False, snapshot=True)
        elif role == Timestamp.type:
            self._cascade(now, targets=False, snapshot=False)
        return new_public.keyid


def _meta_for(version: int, data: bytes) -> MetaFile:
    return MetaFile(
        version=version, length=len(data), hashes={"sha256": hashlib.sha256(data).hexdigest()}
    )


def _sign_role(
    md: Metadata[Any], role: str, root: Root, signers: Mapping[str, CryptoSigner]
) -> None:
    md.signatures.clear()
    for keyid in root.roles[role].keyids:
        if keyid in signers:
            md.sign(signers[keyid], append=True)
    result = root.get_verification_result(role, md.signed_bytes, md.signatures)
    if not result.verified:
        raise SigningKeyError(
            f"{role} needs {result.threshold} signatures; only {len(result.signed)} keys are held"
        )


def _sign_root(
    md: Metadata[Root], previous: Root | None, signers: Mapping[str, CryptoSigner]
) -> None:
    md.signatures.clear()
    keyids = list(md.signed.roles[Root.type].keyids)
    if previous is not None:
        keyids += [k for k in previous.roles[Root.type].keyids if k not in keyids]
    for keyid in keyids:
        if keyid in signers:
            md.sign(signers[keyid], append=True)
    try:
        result = md.signed.get_root_verification_result(previous, md.signed_bytes, md.signatures)
    except (ValueError, UnverifiedSignatureError) as error:
        raise SigningKeyError(f"cannot sign root: {error}") from None
    if not result.verified:
        raise SigningKeyError(
            "root needs a threshold of signatures from both the previous and the new "
            "root keys; not enough of those keys are held"
        )
