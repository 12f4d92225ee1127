# Copyright 2026 Vigil contributors
# SPDX-License-Identifier: Apache-2.0
"""The TUF client side: one verification path for online and offline updates.

``UpdateClient`` wraps the stock ``tuf.ngclient.Updater``. The engine's online
update gives it an HTTP fetcher (adding the license as a bearer token); the
air-gapped install gives it ``LocalFileFetcher`` over an extracted export.
Either way the same python-tuf code verifies the same metadata.

Rules:

- Trust starts from the root metadata the engine was given out of band
  (``trusted_root``); newer roots are accepted only through the signed chain.
- The clock is read once (or the caller's ``reference_time`` is used) and
  that one time is used for every expiry check of the update: it is pinned
  into python-tuf's trusted metadata set, and after ``refresh()`` the final
  root, timestamp, snapshot and targets are checked against it again. Engines
  pass ``max(now, high-water mark)`` so a clock set back cannot revive
  expired metadata.
- Targets are looked up by exact path in signed targets metadata; length and
  hashes are checked by python-tuf while downloading and again by
  ``read_bundle`` before the tar is opened. JSON targets must be no larger
  than ``max_metadata_bytes``; their lengths are checked before download.
- A bundle's target ``custom`` data must say it is a bundle, and its name and
  version must equal those in the verified manifest.
- ``LocalFileFetcher`` serves only ``file:`` URLs inside its directory; a
  missing file is reported as HTTP 404, which python-tuf treats as "no newer
  version".
- python-tuf errors are translated: expired metadata to
  ``ExpiredMetadataError``, bad bundle content to ``BundleVerificationError``,
  network failures to ``RepositoryUnreachableError``, everything else to
  ``RepositoryError``.
"""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from tuf.api import exceptions as tuf_exceptions
from tuf.ngclient.fetcher import FetcherInterface
from tuf.ngclient.updater import Updater

from licensing._util import require_aware, utc_now
from licensing.bundles import VerifiedBundle, read_bundle
from licensing.config import DEFAULT_CONFIG, LicensingConfig
from licensing.exceptions import (
    BundleVerificationError,
    ExpiredMetadataError,
    LicensingError,
    RepositoryError,
    RepositoryUnreachableError,
)
from licensing.targets import (
    LICENSE_KEYS_TARGET,
    REVOCATIONS_TARGET,
    ChannelIndex,
    LicenseKeySet,
    RevocationList,
    channel_index_target,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import datetime
    from typing import IO

    from tuf.api.metadata import TargetFile  # type: ignore[attr-defined]

_CHUNK = 64 * 1024
_NOT_FOUND = 404


class LocalFileFetcher(FetcherInterface):
    """Serves ``file:`` URLs below ``root`` to a python-tuf ``Updater``."""

    def __init__(self, root: Path) -> None:
        self._root = root.resolve()

    def _fetch(self, url: str) -> Iterator[bytes]:
        parts = urlsplit(url)
        if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
            raise tuf_exceptions.DownloadError(f"not a local file URL: {url}")
        path = Path(unquote(parts.path)).resolve()
        if not path.is_relative_to(self._root):
            raise tuf_exceptions.DownloadError(f"URL outside the served directory: {url}")
        try:
            handle = path.open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise tuf_exceptions.DownloadHTTPError(f"{url} not found", _NOT_FOUND) from None
        return _chunks(handle)


def _chunks(handle: IO[bytes]) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(_CHUNK):
            yield chunk


def local_base_urls(root: Path) -> tuple[str, str]:
    """Metadata and targets base URLs of a repository directory (for
    ``LocalFileFetcher``).
    """
    root = root.resolve()
    return (root / "metadata").as_uri() + "/", (root / "targets").as_uri() + "/"


@contextlib.contextmanager
def _translated_tuf_errors(
    content_error: type[LicensingError] = RepositoryError,
) -> Iterator[None]:
    try:
        yield
    except tuf_exceptions.ExpiredMetadataError as error:
        raise ExpiredMetadataError(f"update metadata expired: {error}") from error
    except (
        tuf_exceptions.LengthOrHashMismatchError,
        tuf_exceptions.DownloadLengthMismatchError,
    ) as error:
        raise content_error(
            f"downloaded content does not match signed metadata: {error}"
        ) from error
    except tuf_exceptions.RepositoryError as error:
        raise RepositoryError(f"update metadata failed to verify: {error}") from error
    except tuf_exceptions.DownloadHTTPError as error:
        if error.status_code == _NOT_FOUND:
            raise RepositoryError(f"missing from the repository: {error}") from error
        raise RepositoryUnreachableError(f"repository answered {error.status_code}") from error
    except tuf_exceptions.DownloadError as error:
        raise RepositoryUnreachableError(f"repository unreachable: {error}") from error
    except ValueError as error:
        # python-tuf raises ValueError for malformed metadata fields.
        raise RepositoryError(f"update metadata is malformed: {error}") from error


@dataclass(frozen=True)
class VerifiedTarget:
    path: str
    info: TargetFile
    local_path: Path

    @property
    def custom(self) -> dict[str, Any]:
        custom = self.info.custom
        return dict(custom) if isinstance(custom, dict) else {}


class UpdateClient:
    """A verified view of the update repository at one reference time.

    Args:
        trusted_root: Root metadata bytes given out of band.
        metadata_dir: The client's metadata cache. Keep it between runs: it
            holds the newest trusted root and the last timestamp and snapshot,
            which python-tuf uses against rollback.
        metadata_base_url: Base URL of ``metadata/`` (ends with ``/``).
        target_base_url: Base URL of ``targets/`` (ends with ``/``).
        fetcher: How to download; python-tuf's HTTP fetcher if ``None``.
        reference_time: The one time used for every expiry check.
        config: Size limits.

    Raises:
        RepositoryError: ``trusted_root`` is not valid root metadata.
    """

    def __init__(
        self,
        *,
        trusted_root: bytes,
        metadata_dir: Path,
        metadata_base_url: str,
        target_base_url: str,
        fetcher: FetcherInterface | None = None,
        reference_time: datetime | None = None,
        config: LicensingConfig = DEFAULT_CONFIG,
    ) -> None:
        if len(trusted_root) > config.max_metadata_bytes:
            raise RepositoryError("trusted root metadata is too large")
        self.reference_time = (
            utc_now() if reference_time is None else require_aware(reference_time, "reference_time")
        )
        self._config = config
        self._metadata_dir = metadata_dir
        metadata_dir.mkdir(parents=True, exist_ok=True)
        with _translated_tuf_errors():
            self._updater = Updater(
                str(metadata_dir),
                metadata_base_url,
                target_base_url=target_base_url,
                fetcher=fetcher,
                config=config.updater_config(),
                bootstrap=trusted_root,
            )
        # python-tuf reads the wall clock when the Updater is made; pin the
        # caller's single reading instead (see the module docstring).
        trusted_set: Any = getattr(self._updater, "_trusted_set", None)
        if not hasattr(trusted_set, "reference_time"):
            raise RepositoryError("this python-tuf version does not allow pinning the clock")
        trusted_set.reference_time = self.reference_time
        self._trusted_set = trusted_set
        self._refreshed = False

    @property
    def root_version(self) -> int:
        """Version of the newest root verified so far."""
        version: int = self._trusted_set.root.version
        return version

    def root_bytes(self) -> bytes:
        """Bytes of the newest verified root, for the engine to keep as its
        trust anchor next time.
        """
        path = self._metadata_dir / "root_history" / f"{self.root_version}.root.json"
        return path.read_bytes()

    def refresh(self) -> None:
        """Verify root chain, timestamp, snapshot and targets (once).

        Raises:
            ExpiredMetadataError, RepositoryError, RepositoryUnreachableError
        """
        if self._refreshed:
            return
        with _translated_tuf_errors():
            self._updater.refresh()
        for role in ("root", "timestamp", "snapshot", "targets"):
            if self._trusted_set[role].is_expired(self.reference_time):
                raise ExpiredMetadataError(f"{role} metadata is expired")
        self._refreshed = True

    def target_info(self, target_path: str) -> TargetFile:
        """Signed information about ``target_path``.

        Raises:
            RepositoryError: No such target.
        """
        self.refresh()
        with _translated_tuf_errors():
            info = self._updater.get_targetinfo(target_path)
        if info is None:
            raise RepositoryError(f"target {target_path!r} is not in the signed targets")
        return info

    def has_target(self, target_path: str) -> bool:
        self.refresh()
        with _translated_tuf_errors():
            return self._updater.get_targetinfo(target_path) is not None

    def download(
        self,
        target_path: str,
        destination: Path,
        *,
        content_error: type[LicensingError] = RepositoryError,
    ) -> VerifiedTarget:
        """Download ``target_path`` to the file ``destination``, verified."""
        info = self.target_info(target_path)
        destination.parent.mkdir(parents=True, exist_ok=True)
        with _translated_tuf_errors(content_error):
            local = self._updater.download_target(info, str(destination))
        return VerifiedTarget(path=target_path, info=info, local_path=Path(local))

    def _download_document(self, target_path: str) -> bytes:
        info = self.target_info(target_path)
        if info.length > self._config.max_metadata_bytes:
            raise RepositoryError(f"{target_path} is larger than {self._config.max_metadata_bytes}")
        with tempfile.TemporaryDirectory() as scratch:
            target = self.download(target_path, Path(scratch) / "document.json")
            return target.local_path.read_bytes()

    def license_keys(self) -> LicenseKeySet:
        """The signed license public keys (``licensing/keys.json``).

        Raises:
            RepositoryError: Not published, or malformed.
        """
        return LicenseKeySet.from_bytes(self._download_document(LICENSE_KEYS_TARGET), self._config)

    def revocations(self) -> RevocationList:
        """The signed revocation list; empty if the repository has none yet."""
        if not self.has_target(REVOCATIONS_TARGET):
            return RevocationList()
        return RevocationList.from_bytes(self._download_document(REVOCATIONS_TARGET), self._config)

    def channel_index(self, channel: str) -> ChannelIndex:
        """Which bundle is current on ``channel``.

        Raises:
            RepositoryError: The channel has no bundle, or its index is malformed.
        """
        index = ChannelIndex.from_bytes(
            self._download_document(channel_index_target(channel)), self._config
        )
        if index.channel != channel:
            raise RepositoryError(f"channel index of {channel!r} names {index.channel!r}")
        return index

    def fetch_bundle(self, target_path: str, workdir: Path) -> VerifiedBundle:
        """Download, verify and extract a bundle into ``workdir``.

        ``workdir/bundle.tar`` receives the file and ``workdir/bundle/`` its
        verified content.

        Raises:
            BundleVerificationError, UnsafeBundleError: The bundle is bad.
            RepositoryError: Metadata problem, or not a bundle target.
        """
        info = self.target_info(target_path)
        custom = info.custom
        if not isinstance(custom, dict) or custom.get("kind") != "bundle":
            raise RepositoryError(f"target {target_path!r} is not a bundle")
        if info.length > self._config.max_bundle_bytes:
            raise BundleVerificationError(
                f"bundle is larger than {self._config.max_bundle_bytes} bytes"
            )
        target = self.download(
            target_path, workdir / "bundle.tar", content_error=BundleVerificationError
        )
        bundle = read_bundle(
            target.local_path,
            workdir / "bundle",
            expected_length=info.length,
            expected_hashes=info.hashes,
            config=self._config,
        )
        manifest = bundle.manifest
        if custom.get("name") != manifest.name or custom.get("version") != manifest.version:
            raise BundleVerificationError(
                f"signed target says {custom.get('name')}-{custom.get('version')}, "
                f"manifest says {manifest.label}"
            )
        return bundle
