"""Publishing model directories as signed bundles, and exporting them.

``publish_bundle`` takes a model directory as ``vigil-portal models train``
writes it (``model.skops``, ``manifest.json``, ``MODEL_CARD.md``), and:

1. refuses a version already published, or one not newer than the channel's
   current bundle (engines would refuse it as a rollback);
2. builds the bundle manifest from the model's ``manifest.json`` with the
   given ``name`` and ``version`` (the model's own ``version``/``files`` are
   replaced), and the tar with ``licensing.bundles.build_bundle``;
3. adds it to the repository, points the channel at it and publishes;
4. records the bundle and a ``bundle:published`` event in the caller's session.

``export_bundle`` writes the air-gapped export of a published version after
re-signing the timestamp, so the export verifies for the full timestamp
expiry period (``VIGIL_TIMESTAMP_EXPIRY_DAYS``) from the moment it is made.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import select

from licensing.bundles import (
    DIGESTED_MEMBERS,
    MANIFEST_FORMAT,
    MANIFEST_NAME,
    BundleManifest,
    build_bundle,
    parse_version,
)
from licensing.exceptions import BundleVerificationError
from licensing.export import export_bundle as write_export
from portal.bundles.models import Bundle, Channel
from portal.db_base import utc_now
from portal.errors import (
    BundleConflictError,
    BundleNotFoundError,
    InvalidInputError,
    InvalidModelDirectoryError,
)
from portal.events.service import record_event
from portal.events.tags import EventTag

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.orm import Session

    from licensing.repository import Repository

DEFAULT_BUNDLE_NAME: Final = "reference"
MAX_MODEL_MANIFEST_BYTES: Final = 1024 * 1024
_BUNDLE_NAME: Final = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def get_bundle(session: Session, version: str) -> Bundle:
    """Raises BundleNotFoundError if ``version`` was never published."""
    found = session.scalars(select(Bundle).where(Bundle.version == version)).one_or_none()
    if found is None:
        raise BundleNotFoundError(f"no published bundle has version {version}")
    return found


def list_bundles(session: Session) -> Sequence[Bundle]:
    return session.scalars(select(Bundle).order_by(Bundle.published_at.desc())).all()


def _read_model_manifest(model_dir: Path) -> dict[str, Any]:
    if not model_dir.is_dir():
        raise InvalidModelDirectoryError(f"{model_dir} is not a directory")
    for name in (MANIFEST_NAME, *DIGESTED_MEMBERS):
        if not (model_dir / name).is_file():
            raise InvalidModelDirectoryError(f"{model_dir} has no {name}")
    path = model_dir / MANIFEST_NAME
    if path.stat().st_size > MAX_MODEL_MANIFEST_BYTES:
        raise InvalidModelDirectoryError(f"{path} is larger than {MAX_MODEL_MANIFEST_BYTES} bytes")
    try:
        document = json.loads(path.read_bytes())
    except (ValueError, UnicodeError) as error:
        raise InvalidModelDirectoryError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(document, dict):
        raise InvalidModelDirectoryError(f"{path}: not a JSON object")
    return document


def bundle_manifest_for(
    model_manifest: dict[str, Any], *, name: str, version: str
) -> BundleManifest:
    """The bundle manifest of a model: its own manifest, named and versioned.

    Raises:
        InvalidInputError: ``name`` or ``version`` is malformed, or the model's
            manifest lacks a field a bundle needs.
    """
    if not _BUNDLE_NAME.fullmatch(name) or ".." in name:
        raise InvalidInputError(f"bundle name {name!r} must match {_BUNDLE_NAME.pattern}")
    try:
        parse_version(version)
    except ValueError as error:
        raise InvalidInputError(str(error)) from None
    document = {
        **model_manifest,
        "format": MANIFEST_FORMAT,
        "name": name,
        "version": version,
        "created": model_manifest.get("created") or utc_now().isoformat(timespec="seconds"),
        "files": {},
    }
    try:
        return BundleManifest.from_dict(document)
    except BundleVerificationError as error:
        raise InvalidModelDirectoryError(f"{MANIFEST_NAME}: {error}") from None


def _check_newer_than_channel(repository: Repository, channel: Channel, version: str) -> None:
    current = repository.channel_index(channel.value)
    # An equal version passes: callers have checked the database does not know it,
    # so this resumes a publish whose database commit failed (bundles are
    # reproducible: the same model directory gives the same target).
    if current is not None and parse_version(version) < parse_version(current.bundle_version):
        raise BundleConflictError(
            f"version {version} is not newer than {current.bundle_version}, "
            f"the current {channel.value} bundle (engines refuse rollbacks)"
        )


def publish_bundle(
    session: Session,
    repository: Repository,
    model_dir: Path,
    *,
    version: str,
    channel: Channel,
    actor: str,
    name: str | None = None,
) -> Bundle:
    """Sign and publish ``model_dir`` as bundle ``version`` on ``channel``.

    Raises:
        InvalidModelDirectoryError, InvalidInputError: Unusable model or arguments.
        BundleConflictError: The version exists or is not newer than the channel's.
        BundleError, RepositoryError, SigningKeyError: Building or signing failed.
    """
    model_manifest = _read_model_manifest(model_dir)
    bundle_name = name or model_manifest.get("name") or DEFAULT_BUNDLE_NAME
    if not isinstance(bundle_name, str):
        raise InvalidModelDirectoryError(f"{MANIFEST_NAME}: 'name' must be a string")
    manifest = bundle_manifest_for(model_manifest, name=bundle_name, version=version)
    if session.scalars(select(Bundle.id).where(Bundle.version == version)).first() is not None:
        raise BundleConflictError(f"bundle version {version} is already published")
    _check_newer_than_channel(repository, channel, version)

    with tempfile.TemporaryDirectory(prefix="vigil-bundle-") as scratch:
        bundle_file = Path(scratch) / f"{manifest.label}.tar"
        final_manifest = build_bundle(model_dir, bundle_file, manifest)
        target_path = repository.add_bundle(bundle_file, channel=channel.value)
        versions = repository.publish()
    info = repository.published_targets()[target_path]

    bundle = Bundle(
        name=final_manifest.name,
        version=final_manifest.version,
        channel=channel,
        target_path=target_path,
        sha256=info.hashes["sha256"],
        length=info.length,
        created=final_manifest.created,
        published_by=actor,
        manifest=final_manifest.to_dict(),
    )
    session.add(bundle)
    session.flush()
    record_event(
        session,
        EventTag.BUNDLE_PUBLISHED,
        actor=actor,
        subject_id=bundle.version,
        payload={
            "name": bundle.name,
            "version": bundle.version,
            "channel": channel.value,
            "target_path": target_path,
            "sha256": bundle.sha256,
            "length": bundle.length,
            "targets_version": versions.targets,
        },
    )
    return bundle


def export_bundle(
    session: Session, repository: Repository, version: str, out: Path, *, actor: str
) -> Bundle:
    """Write the self-contained export of published ``version`` to ``out``.

    Raises:
        BundleNotFoundError: ``version`` was never published.
        RepositoryError: Its target is no longer in the signed metadata.
    """
    bundle = get_bundle(session, version)
    repository.refresh_timestamp()
    write_export(repository, bundle.target_path, out)
    record_event(
        session,
        EventTag.BUNDLE_EXPORTED,
        actor=actor,
        subject_id=bundle.version,
        payload={"target_path": bundle.target_path, "file": out.name},
    )
    return bundle
