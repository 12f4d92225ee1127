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

Promotion (``vigil-portal bundles promote``) moves a published bundle onto
another channel, behind a gate:

1. ``evaluate_promotion`` refuses a bundle already on the channel or older
   than the channel's current bundle, then compares it with that bundle (or
   ``against``): both are read from the signed repository (length and hashes
   checked) and score the same fixed labelled evaluation set. Without an
   evaluation set, only two bundles trained on the same data (same digest)
   are compared, by the cross-validation figures both recorded on it; bundles
   trained on different data need ``--eval``. An empty channel has nothing to
   compare with, and the gate passes.
2. ``promote_bundle`` refuses (``PromotionRefusedError``, exit 4, nothing
   changed) a candidate worse than the other bundle by more than the
   tolerance on PR-AUC or recall at 1% or 0.1% FPR
   (``portal.training.comparison``), unless forced with a reason. Otherwise
   the repository stages the bundle on the channel and points the channel at
   it, publishes, and the bundle's row follows it (one row per version); a
   ``bundle:promoted`` event records from, to, the comparison and any force.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
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
    read_bundle,
)
from licensing.exceptions import BundleVerificationError, RepositoryError
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
from portal.training.comparison import (
    DEFAULT_TOLERANCE,
    Comparison,
    compare_headlines,
    compare_on_evaluation_set,
)
from scoring_engine.errors import VigilError
from scoring_engine.model.directory import load_model_dir

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from sqlalchemy.orm import Session

    from licensing.repository import Repository
    from scoring_engine.formats.base import RecordError
    from scoring_engine.model.scorer import GroomingModel

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


#### Promotion ####


class PromotionRefusedError(BundleConflictError):
    """The gate found the candidate worse than the channel's bundle (exit 4)."""


class UnusableBundleError(BundleConflictError):
    """A published bundle's model cannot be loaded for the gate's evaluation."""


@dataclass(frozen=True)
class PromotionGate:
    """A candidate, the bundle it would replace, and how they compare."""

    candidate: Bundle
    channel: Channel
    replaces: str | None  # the channel's current bundle version, if any
    against: Bundle | None  # what it was compared with (the current one unless --against)
    comparison: Comparison | None
    tolerance: float

    @property
    def worse(self) -> list[str]:
        """One ``label: base X, candidate Y`` line per figure worse beyond the tolerance."""
        if self.comparison is None:
            return []
        return [
            f"{m.label}: {self.comparison.base_label} {m.base:.3f}, "
            f"{self.comparison.candidate_label} {m.candidate:.3f}"
            for m in self.comparison.regressions(self.tolerance)
            if m.base is not None and m.candidate is not None
        ]


def load_bundle_model(repository: Repository, bundle: Bundle, scratch: Path) -> GroomingModel:
    """The model of a published bundle, read as an engine reads it: length and hashes from
    the signed targets metadata, then the bundle's own digests and the model file's.

    Raises:
        RepositoryError: The bundle is not in the published metadata.
        BundleError: The stored file fails verification.
        UnusableBundleError: Its model cannot be loaded.
    """
    info = repository.published_targets().get(bundle.target_path)
    if info is None:
        raise RepositoryError(f"{bundle.label} ({bundle.target_path}) is not a published target")
    verified = read_bundle(
        repository.target_file_path(bundle.target_path),
        scratch / bundle.version,
        expected_length=info.length,
        expected_hashes=info.hashes,
    )
    try:
        model, _ = load_model_dir(verified.directory)
    except VigilError as error:
        raise UnusableBundleError(f"{bundle.label}: {error}") from None
    return model


def _manifest_comparison(candidate: Bundle, against: Bundle) -> Comparison:
    digest = candidate.manifest.get("training_data_digest")
    if digest is None or digest != against.manifest.get("training_data_digest"):
        raise InvalidInputError(
            f"{candidate.label} and {against.label} were trained on different data, so their "
            "cross-validation figures do not compare: give a fixed labelled evaluation set "
            "with --eval"
        )
    training = candidate.manifest.get("training") or {}
    n = int(training.get("conversations") or 0)
    return compare_headlines(
        against.manifest.get("metrics") or {},
        candidate.manifest.get("metrics") or {},
        scheme="cross-validation",
        description=f"the cross-validation figures both recorded on the same training data "
        f"({digest}); {n:,} conversations",
        n=n,
        n_positive=int(training.get("grooming") or 0),
        base_label=against.label,
        candidate_label=candidate.label,
    )


def evaluate_promotion(
    session: Session,
    repository: Repository,
    version: str,
    *,
    channel: Channel,
    eval_paths: Sequence[Path] = (),
    against: str | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    fmt: str = "auto",
    strict: bool = False,
    on_error: Callable[[RecordError], None] | None = None,
) -> PromotionGate:
    """Compare bundle ``version`` with the bundle it would replace on ``channel``.

    Raises:
        BundleNotFoundError: ``version`` or ``against`` was never published.
        BundleConflictError: The bundle is already on ``channel``, or older than its bundle.
        InvalidInputError: Bad tolerance or evaluation set, or nothing comparable.
    """
    if not 0.0 <= tolerance < 1.0:
        raise InvalidInputError("--tolerance must be at least 0 and below 1")
    candidate = get_bundle(session, version)
    if candidate.channel is channel:
        raise BundleConflictError(f"{candidate.label} is already on {channel.value}")
    _check_newer_than_channel(repository, channel, version)
    current = repository.channel_index(channel.value)
    replaces = current.bundle_version if current is not None else None
    other: Bundle | None = None
    if against is not None:
        other = get_bundle(session, against)
    elif replaces is not None and replaces != version:
        other = get_bundle(session, replaces)
    comparison = None
    if other is not None and eval_paths:
        with tempfile.TemporaryDirectory(prefix="vigil-gate-") as scratch:
            base_model = load_bundle_model(repository, other, Path(scratch))
            candidate_model = load_bundle_model(repository, candidate, Path(scratch))
        comparison = compare_on_evaluation_set(
            base_model,
            candidate_model,
            eval_paths,
            base_label=other.label,
            candidate_label=candidate.label,
            fmt=fmt,
            strict=strict,
            on_error=on_error,
        )
    elif other is not None:
        comparison = _manifest_comparison(candidate, other)
    return PromotionGate(
        candidate=candidate,
        channel=channel,
        replaces=replaces,
        against=other,
        comparison=comparison,
        tolerance=tolerance,
    )


def promote_bundle(
    session: Session,
    repository: Repository,
    gate: PromotionGate,
    *,
    actor: str,
    force_reason: str | None = None,
) -> Bundle:
    """Put the gate's candidate on its channel, unless the gate refuses it.

    ``force_reason`` promotes a candidate the gate found worse; it is recorded.

    Raises:
        PromotionRefusedError: The candidate is worse beyond the tolerance (not forced).
        RepositoryError, SigningKeyError: Staging or signing failed.
    """
    bundle = gate.candidate
    worse = gate.worse
    if worse and force_reason is None:
        raise PromotionRefusedError(
            f"refused: {bundle.label} is worse than {gate.against.label if gate.against else '?'} "
            f"by more than {gate.tolerance:g} ({'; '.join(worse)}); "
            f"{gate.channel.value} is unchanged"
        )
    if force_reason is not None and not force_reason.strip():
        raise InvalidInputError("a forced promotion needs a reason")
    previous_channel, previous_path = bundle.channel, bundle.target_path
    target_path = repository.promote_bundle(previous_path, channel=gate.channel.value)
    versions = repository.publish()
    info = repository.published_targets()[target_path]
    bundle.channel = gate.channel
    bundle.target_path = target_path
    session.flush()
    record_event(
        session,
        EventTag.BUNDLE_PROMOTED,
        actor=actor,
        subject_id=bundle.version,
        payload={
            "name": bundle.name,
            "version": bundle.version,
            "from": previous_channel.value,
            "to": gate.channel.value,
            "from_target": previous_path,
            "target_path": target_path,
            "sha256": info.hashes["sha256"],
            "replaced": gate.replaces,
            "compared_with": gate.against.version if gate.against else None,
            "comparison": (
                gate.comparison.to_dict(gate.tolerance) if gate.comparison is not None else None
            ),
            "forced": force_reason is not None,
            "reason": force_reason,
            "targets_version": versions.targets,
        },
    )
    return bundle
