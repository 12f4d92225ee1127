"""What the portal serves from its update repository, read once per change.

Engines poll ``timestamp.json`` often, and every request is authenticated
with the license keys the repository publishes, so reading and verifying the
repository's metadata per request would be wasteful. ``PublishedRepository``
keeps, per process:

- the current *published state*: the targets of the signed targets metadata
  (path to ``TargetFile``, with its custom data), the license public keys of
  ``licensing/keys.json`` (the keys engines verify licenses with) and the
  license ids of ``licensing/revocations.json``. It is reloaded, and
  verified, whenever ``metadata/timestamp.json`` changes: every publish
  (a revocation included), re-signing and key rotation rewrites the timestamp
  last, so every portal process sees a revocation on its next request;
- the bytes of recently served metadata files (least recently used first out),
  each with a strong ``ETag`` (the SHA-256 of its content).

Repository writers never change a file in place: they write a new file and
rename it over the old (``licensing._util.atomic_write``), so a file's
identity (device, inode, modification time, size) changes with its content,
and one ``stat`` per request tells whether what is cached is still current.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from portal.errors import ConfigurationError
from portal.repository.service import open_repository

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from tuf.api.metadata import TargetFile  # type: ignore[attr-defined]

    from portal.settings import Settings

TIMESTAMP_FILE: Final = "timestamp.json"
MAX_CACHED_FILES: Final = 64

FileIdentity = tuple[int, int, int, int]


def _identity(path: Path) -> FileIdentity:
    """Raises FileNotFoundError (and other OSError) like ``Path.stat``."""
    stat = path.stat()
    return (stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_size)


@dataclass(frozen=True)
class PublishedState:
    """The published targets and license keys as of one timestamp file."""

    identity: FileIdentity
    targets: Mapping[str, TargetFile]
    license_keys: Mapping[str, Ed25519PublicKey]
    revoked_license_ids: frozenset[str]


@dataclass(frozen=True)
class MetadataFile:
    content: bytes
    etag: str


class PublishedRepository:
    """A per-process, thread-safe cache of the repository's published files."""

    def __init__(self, settings: Settings, *, max_cached_files: int = MAX_CACHED_FILES) -> None:
        self._settings = settings
        self.metadata_dir = settings.repository_dir / "metadata"
        self.targets_dir = settings.repository_dir / "targets"
        self._max_cached_files = max_cached_files
        self._state: PublishedState | None = None
        self._reload_lock = threading.Lock()
        self._files: OrderedDict[str, tuple[FileIdentity, MetadataFile]] = OrderedDict()
        self._files_lock = threading.Lock()

    def state(self) -> PublishedState:
        """The current published state (reloaded if the timestamp changed).

        Raises:
            ConfigurationError: There is no repository (the portal was not initialised).
            RepositoryError: The repository's metadata does not verify.
        """
        try:
            identity = _identity(self.metadata_dir / TIMESTAMP_FILE)
        except FileNotFoundError:
            raise ConfigurationError(
                f"no update repository in {self._settings.repository_dir}: run 'vigil-portal init'"
            ) from None
        state = self._state
        if state is not None and state.identity == identity:
            return state
        with self._reload_lock:
            state = self._state
            if state is None or state.identity != identity:
                # Loaded after the stat: at worst newer than ``identity`` says,
                # and then the next request loads it again.
                repository = open_repository(self._settings, signing=False)
                state = PublishedState(
                    identity=identity,
                    targets=repository.published_targets(),
                    license_keys=dict(repository.license_keys().keys),
                    revoked_license_ids=repository.revocations().revoked_ids,
                )
                self._state = state
        return state

    def metadata_file(self, filename: str) -> MetadataFile | None:
        """The bytes of ``metadata/<filename>``, or None if there is no such file.

        ``filename`` must already be checked to be a bare metadata file name.
        """
        path = self.metadata_dir / filename
        try:
            identity = _identity(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        with self._files_lock:
            cached = self._files.get(filename)
            if cached is not None and cached[0] == identity:
                self._files.move_to_end(filename)
                return cached[1]
        try:
            content = path.read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            return None
        served = MetadataFile(content=content, etag=f'"{hashlib.sha256(content).hexdigest()}"')
        with self._files_lock:
            self._files[filename] = (identity, served)
            self._files.move_to_end(filename)
            while len(self._files) > self._max_cached_files:
                self._files.popitem(last=False)
        return served
