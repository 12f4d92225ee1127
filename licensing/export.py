# Copyright 2026 Vigil contributors
# SPDX-License-Identifier: Apache-2.0
"""Exported bundles: a bundle plus the signed metadata that verifies it, for
air-gapped installs (``vigil-portal bundles export`` to ``vigil-engine install``).

An export is an uncompressed, reproducible tar laid out like the repository::

    export.json                      {"format": "vigil-bundle-export/1", "bundle": TARGET}
    metadata/1.root.json ... N.root.json, timestamp.json, S.snapshot.json, T.targets.json
    targets/bundles/<channel>/<SHA256>.<name>-<version>.tar
    targets/licensing/<SHA256>.keys.json
    targets/licensing/<SHA256>.revocations.json   (when published)

Rules enforced by ``verify_exported_bundle``:

- Nothing in the export is trusted by itself. ``export.json`` only names which
  target to install; that target must be a bundle in the signed targets.
- The export file is size-checked before it is opened, and extracted with the
  same safe extraction as bundles: plain files only, names under
  ``metadata/`` or ``targets/``, per-member and total size limits.
- Verification is the online code path: a stock ``tuf.ngclient.Updater``
  (through ``UpdateClient``) reads the extracted directory with
  ``LocalFileFetcher``, starting from the engine's trusted root. An export
  from another portal (different root keys), tampered metadata, a tampered
  bundle, manifest or model file, and expired metadata are all refused.
- The license keys and revocation list are returned only as verified targets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from licensing._tar import safe_extract, write_deterministic_tar
from licensing._util import canonical_json, require_aware, strict_json_loads, utc_now
from licensing.client import LocalFileFetcher, UpdateClient, local_base_urls
from licensing.config import DEFAULT_CONFIG, LicensingConfig
from licensing.exceptions import RepositoryError, UnsafeBundleError
from licensing.targets import LICENSE_KEYS_TARGET, REVOCATIONS_TARGET

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime
    from pathlib import Path

    from licensing.bundles import VerifiedBundle
    from licensing.repository import Repository
    from licensing.targets import LicenseKeySet, RevocationList

EXPORT_FORMAT: Final = "vigil-bundle-export/1"
EXPORT_INDEX: Final = "export.json"
_MAX_INDEX_BYTES: Final = 4096


@dataclass(frozen=True)
class VerifiedExport:
    """Everything an air-gapped install needs, all verified against the trusted root."""

    bundle: VerifiedBundle
    target_path: str
    custom: dict[str, object]
    license_keys: LicenseKeySet
    revocations: RevocationList
    root_version: int
    root_bytes: bytes

    @property
    def bundle_path(self) -> Path:
        return self.bundle.path


def export_bundle(repo: Repository, target_path: str, out_file: Path) -> None:
    """Write an export of the published bundle ``target_path`` to ``out_file``.

    Raises:
        RepositoryError: ``target_path`` is not a published bundle, or the
            license keys are not published.
    """
    published = repo.published_targets()
    info = published.get(target_path)
    if info is None or not isinstance(info.custom, dict) or info.custom.get("kind") != "bundle":
        raise RepositoryError(f"{target_path!r} is not a published bundle")
    if LICENSE_KEYS_TARGET not in published:
        raise RepositoryError("license keys are not published; publish them before exporting")

    members: dict[str, bytes | Path] = {
        EXPORT_INDEX: canonical_json({"format": EXPORT_FORMAT, "bundle": target_path}),
    }
    versions = repo.versions()
    for version in range(1, versions.root + 1):
        members[f"metadata/{version}.root.json"] = repo.root_bytes(version)
    for role in ("targets", "snapshot", "timestamp"):
        path = repo.metadata_file(role)
        members[f"metadata/{path.name}"] = path.read_bytes()
    for name in (target_path, LICENSE_KEYS_TARGET, REVOCATIONS_TARGET):
        if name in published:
            stored = repo.target_file_path(name)
            members[stored.relative_to(repo.directory).as_posix()] = stored
    write_deterministic_tar(out_file, members)


def _export_member_limit(config: LicensingConfig) -> Callable[[str], int | None]:
    def limit(name: str) -> int | None:
        if name == EXPORT_INDEX:
            return _MAX_INDEX_BYTES
        if name.startswith("metadata/") and name.count("/") == 1 and name.endswith(".json"):
            return config.max_metadata_bytes
        if name.startswith("targets/"):
            return config.max_bundle_bytes
        return None

    return limit


def _read_index(path: Path) -> str:
    try:
        index = strict_json_loads(path.read_bytes())
    except (OSError, ValueError, UnicodeError):
        raise UnsafeBundleError("export index is not valid JSON") from None
    if not isinstance(index, dict) or index.get("format") != EXPORT_FORMAT:
        raise UnsafeBundleError(f"not a {EXPORT_FORMAT} export")
    target = index.get("bundle")
    if not isinstance(target, str) or not target.startswith("bundles/"):
        raise UnsafeBundleError("export does not name a bundle target")
    return target


def verify_exported_bundle(
    export_file: Path,
    trusted_root_bytes: bytes,
    workdir: Path,
    *,
    reference_time: datetime | None = None,
    metadata_cache_dir: Path | None = None,
    config: LicensingConfig = DEFAULT_CONFIG,
) -> VerifiedExport:
    """Verify an export against the engine's trusted root and extract its bundle.

    Args:
        export_file: The file made by ``export_bundle``.
        trusted_root_bytes: The root metadata the engine trusts.
        workdir: An empty or missing scratch directory; the verified bundle
            ends up in ``workdir/bundle.tar`` and ``workdir/bundle/``.
        reference_time: The one time for every expiry check (default: now).
        metadata_cache_dir: The engine's persistent TUF metadata cache, shared
            with online updates so an older export cannot roll metadata back.
            Defaults to a fresh cache inside ``workdir``.
        config: Size limits.

    Raises:
        UnsafeBundleError: Oversized or unsafe archive, or not an export.
        ExpiredMetadataError, RepositoryError: Metadata fails to verify.
        BundleVerificationError: The bundle does not match signed metadata or
            its own manifest.
    """
    now = utc_now() if reference_time is None else require_aware(reference_time, "reference_time")
    size = export_file.stat().st_size
    if size > config.max_export_bytes:
        raise UnsafeBundleError(f"export is larger than {config.max_export_bytes} bytes")

    extracted = workdir / "export"
    with export_file.open("rb") as handle:
        files = safe_extract(
            handle,
            extracted,
            member_limit=_export_member_limit(config),
            max_total=config.max_export_bytes,
            max_members=config.max_export_members,
        )
    if EXPORT_INDEX not in files:
        raise UnsafeBundleError("export has no index")
    target_path = _read_index(files[EXPORT_INDEX])

    metadata_base_url, target_base_url = local_base_urls(extracted)
    client = UpdateClient(
        trusted_root=trusted_root_bytes,
        metadata_dir=metadata_cache_dir or workdir / "tuf",
        metadata_base_url=metadata_base_url,
        target_base_url=target_base_url,
        fetcher=LocalFileFetcher(extracted),
        reference_time=now,
        config=config,
    )
    client.refresh()
    bundle = client.fetch_bundle(target_path, workdir)
    info = client.target_info(target_path)
    return VerifiedExport(
        bundle=bundle,
        target_path=target_path,
        custom=dict(info.custom),
        license_keys=client.license_keys(),
        revocations=client.revocations(),
        root_version=client.root_version,
        root_bytes=client.root_bytes(),
    )
