"""The installed bundle: installing a verified export, and checking it before every run.

``install_export`` (``vigil-engine install``, the air-gapped path of SPEC §4):

1. The clock is read once and checked against the high-water mark (``trust.check_clock``).
2. ``licensing.export.verify_exported_bundle`` verifies the export against the stored
   trust root, through the engine's persistent TUF metadata cache (so metadata cannot roll
   back), and safely extracts the bundle (``licensing.bundles.read_bundle``).
3. The trust root, license keys and revocation list the export verified are stored, even
   if the bundle is then refused: a revocation is news whatever else the export holds.
4. The license is verified with those keys (a revoked license stops here), must be before
   its ``exp`` (updates stop at expiry; scoring goes on through the grace period), and
   must entitle the bundle's channel. Exit 3 otherwise.
5. The bundle must admit this engine's version, and must not be older than the highest
   version ever installed here (rollback). Exit 4 otherwise.
6. The extracted bundle moves to a new ``bundles/<version>/`` and the digests of its files
   are recorded in ``bundles/current.json``; replacing that file switches atomically. The
   record it replaces becomes ``bundles/previous.json``; older directories are removed.

Steps 3 to 6 are ``install_verified``; ``vigil-engine update`` (``scoring_engine.updates``)
runs them on a bundle python-tuf downloaded from the portal, so both paths install alike.

``load_installed_model`` (before ``score`` and ``evaluate``) checks the clock, verifies the
license again, checks its channels entitle the installed bundle, checks every installed
file against the digests recorded at install (a file changed after install is refused),
then loads the model through ``scoring_engine.model.directory.load_model_dir`` and its
fixed type allow-list.

The record itself lives in the engine home, protected like the engine's own files; it
detects installed files changed after install, not an attacker who can rewrite the home.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from tuf.api import exceptions as tuf_exceptions

from licensing.bundles import (
    MANIFEST_NAME,
    MODEL_CARD_NAME,
    MODEL_NAME,
    check_engine_compatible,
    check_not_rollback,
    parse_version,
)
from licensing.exceptions import ExpiredMetadataError, LicensingError
from licensing.export import verify_exported_bundle
from licensing.tokens import VerifiedLicense
from scoring_engine import __version__, trust
from scoring_engine.errors import VigilError
from scoring_engine.home import EngineHome, atomic_write, json_bytes
from scoring_engine.trust import (
    LIMITS,
    BundleCheckError,
    LicenseCheckError,
    check_clock,
    check_entitled,
    engine_error,
    isoformat_z,
    license_warnings,
    store_verified_documents,
    stored_trust_root,
    verify_stored_license,
)

if TYPE_CHECKING:
    from licensing.export import VerifiedExport
    from scoring_engine.model.scorer import GroomingModel

RECORD_FORMAT: Final = 1
INSTALLED_FILES: Final = (MANIFEST_NAME, MODEL_NAME, MODEL_CARD_NAME)
_CHUNK: Final = 1 << 20
_MAX_RECORD_BYTES: Final = 64 * 1024
_MAX_HISTORY_BYTES: Final = 4 * 1024 * 1024


#### The install record ####


@dataclass(frozen=True)
class InstalledFile:
    length: int
    sha256: str


@dataclass(frozen=True)
class InstallRecord:
    """One installed bundle and what was verified about it when it was installed."""

    directory: str
    name: str
    version: str
    channel: str
    target_path: str
    target_length: int
    target_hashes: dict[str, str]
    files: dict[str, InstalledFile]
    installed_at: datetime
    root_version: int
    source: str

    @property
    def label(self) -> str:
        return f"{self.name}-{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": RECORD_FORMAT,
            "directory": self.directory,
            "name": self.name,
            "version": self.version,
            "label": self.label,
            "channel": self.channel,
            "target": {
                "path": self.target_path,
                "length": self.target_length,
                "hashes": dict(self.target_hashes),
            },
            "files": {
                name: {"length": digest.length, "sha256": digest.sha256}
                for name, digest in sorted(self.files.items())
            },
            "installed_at": isoformat_z(self.installed_at),
            "root_version": self.root_version,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, document: Any) -> InstallRecord:
        """Raises ValueError, KeyError or TypeError for a malformed record."""
        if not isinstance(document, dict) or document.get("format") != RECORD_FORMAT:
            raise ValueError("unknown record format")
        target = document["target"]
        files = {
            str(name): InstalledFile(length=int(entry["length"]), sha256=str(entry["sha256"]))
            for name, entry in document["files"].items()
        }
        directory = str(document["directory"])
        if set(files) != set(INSTALLED_FILES) or Path(directory).name != directory:
            raise ValueError("record lists unexpected files or directory")
        return cls(
            directory=directory,
            name=str(document["name"]),
            version=str(document["version"]),
            channel=str(document["channel"]),
            target_path=str(target["path"]),
            target_length=int(target["length"]),
            target_hashes={str(k): str(v) for k, v in target["hashes"].items()},
            files=files,
            installed_at=datetime.fromisoformat(document["installed_at"]),
            root_version=int(document["root_version"]),
            source=str(document["source"]),
        )


def _read_json(path: Path, limit: int) -> Any | None:
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        return None
    if len(data) > limit:
        raise BundleCheckError(f"{path} is larger than {limit} bytes")
    try:
        return json.loads(data)
    except ValueError:
        raise BundleCheckError(f"{path} is corrupt; reinstall the bundle") from None


def read_record(path: Path) -> InstallRecord | None:
    """The record in ``path``, or None if there is none.

    Raises:
        BundleCheckError: It is corrupt.
    """
    document = _read_json(path, _MAX_RECORD_BYTES)
    if document is None:
        return None
    try:
        return InstallRecord.from_dict(document)
    except (ValueError, KeyError, TypeError, AttributeError):
        raise BundleCheckError(f"{path} is corrupt; reinstall the bundle") from None


def _history(home: EngineHome) -> list[dict[str, Any]]:
    document = _read_json(home.history_file, _MAX_HISTORY_BYTES)
    if document is None:
        return []
    if not isinstance(document, list) or not all(
        isinstance(entry, dict) and isinstance(entry.get("version"), str) for entry in document
    ):
        raise BundleCheckError(f"{home.history_file} is corrupt")
    return document


def highest_installed_version(home: EngineHome) -> str | None:
    """The newest bundle version this engine ever installed (the rollback guard)."""
    versions = [entry["version"] for entry in _history(home)]
    for path in (home.current_record_file, home.previous_record_file):
        record = read_record(path)
        if record is not None:
            versions.append(record.version)
    valid = []
    for version in versions:
        try:
            valid.append((parse_version(version), version))
        except ValueError:
            continue
    return max(valid)[1] if valid else None


#### Installing ####


@dataclass(frozen=True)
class InstallResult:
    record: InstallRecord
    previous: InstallRecord | None
    license: VerifiedLicense
    warnings: tuple[str, ...] = field(default_factory=tuple)


def _digest(path: Path) -> InstalledFile:
    digest = hashlib.sha256()
    length = 0
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            length += len(block)
            digest.update(block)
    return InstalledFile(length=length, sha256=digest.hexdigest())


def _free_directory(bundles: Path, version: str) -> Path:
    candidate = bundles / version
    number = 2
    while candidate.exists():
        candidate = bundles / f"{version}~{number}"
        number += 1
    return candidate


def remove_unreferenced(home: EngineHome) -> None:
    """Remove bundle directories that are neither current nor previous, and leftovers."""
    keep = set()
    for path in (home.current_record_file, home.previous_record_file):
        record = read_record(path)
        if record is not None:
            keep.add(record.directory)
    for entry in home.bundles.iterdir():
        if entry.is_dir() and not entry.is_symlink() and entry.name not in keep:
            shutil.rmtree(entry, ignore_errors=True)
    for entry in home.scratch.glob("install-*"):
        shutil.rmtree(entry, ignore_errors=True)


def _switch(home: EngineHome, record: InstallRecord) -> InstallRecord | None:
    """Make ``record`` current; its predecessor becomes previous. Returns the predecessor."""
    previous = read_record(home.current_record_file)
    if previous is not None:
        atomic_write(home.previous_record_file, home.current_record_file.read_bytes())
    atomic_write(home.current_record_file, json_bytes(record.to_dict()))
    history = _history(home)
    history.append(
        {
            "label": record.label,
            "version": record.version,
            "channel": record.channel,
            "sha256": record.target_hashes.get("sha256"),
            "installed_at": isoformat_z(record.installed_at),
        }
    )
    atomic_write(home.history_file, json_bytes(history))
    return previous


def _refused_export(export_file: Path, error: LicensingError) -> VigilError:
    hint = ""
    cause = error.__cause__
    if isinstance(cause, tuf_exceptions.UnsignedMetadataError):
        hint = " (not signed by this engine's portal: an export of another portal, or altered)"
    elif isinstance(cause, tuf_exceptions.BadVersionNumberError):
        hint = " (older than update metadata this engine already verified: a replayed export)"
    elif isinstance(error, ExpiredMetadataError):
        hint = " (ask the portal operator for a fresh export)"
    refused = engine_error(error)
    return type(refused)(f"cannot install {export_file.name}: {refused}{hint}")


def install_export(home: EngineHome, export_file: Path) -> InstallResult:
    """Verify ``export_file`` and switch to its bundle; see the module docstring.

    Raises:
        LicenseCheckError: Not initialised, clock set back, or the license cannot install.
        BundleCheckError: The export, its metadata or its bundle is refused.
    """
    if not home.is_initialised():
        stored_trust_root(home)  # raises with the hint to run init
        raise LicenseCheckError(f"{home.path} holds no license: run `vigil-engine init`")
    now = trust.clock()
    with home.lock():
        root_bytes, _ = stored_trust_root(home)
        check_clock(home, now, advance=True)
        with scratch_directory(home) as workdir:
            try:
                export = verify_exported_bundle(
                    export_file,
                    root_bytes,
                    workdir,
                    reference_time=now,
                    metadata_cache_dir=home.tuf_cache,
                    config=LIMITS,
                )
            except LicensingError as error:
                raise _refused_export(export_file, error) from None
            result = install_verified(home, export, now, source=export_file.name)
        remove_unreferenced(home)
    return result


@contextlib.contextmanager
def scratch_directory(home: EngineHome) -> Iterator[Path]:
    """A fresh directory in the home's scratch space (same file system), removed after."""
    home.scratch.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(dir=home.scratch, prefix="install-"))
    try:
        yield workdir
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def install_verified(
    home: EngineHome, export: VerifiedExport, now: datetime, *, source: str
) -> InstallResult:
    """Steps 3 to 6 of the module docstring for a bundle TUF verified (from an export
    file or from the portal); the caller holds the home's lock.

    Raises:
        LicenseCheckError: The license cannot install this bundle.
        BundleCheckError: The bundle is refused (rollback, engine version, metadata).
    """
    store_verified_documents(home, export)
    manifest = export.bundle.manifest
    channel = export.custom.get("channel")
    if not isinstance(channel, str):
        raise BundleCheckError(f"signed target {export.target_path} names no channel")

    verified = verify_stored_license(home, now)
    if verified.in_grace:
        raise LicenseCheckError(
            f"license {verified.claims.jti} expired at "
            f"{isoformat_z(verified.claims.exp)}: no new bundle is installed after "
            f"expiry (scoring continues until {isoformat_z(verified.grace_ends)}); "
            "renew it, then run `vigil-engine init --license NEW_TOKEN_FILE`"
        )
    check_entitled(verified.claims, channel, manifest.label)
    try:
        check_engine_compatible(manifest, __version__)
        check_not_rollback(manifest.version, highest_installed_version(home))
    except LicensingError as error:
        raise engine_error(error) from None

    destination = _free_directory(home.bundles, manifest.version)
    destination.parent.mkdir(parents=True, exist_ok=True)
    export.bundle.directory.replace(destination)
    files = {name: _digest(destination / name) for name in INSTALLED_FILES}
    for name in (MODEL_NAME, MODEL_CARD_NAME):
        listed = manifest.files[name]
        if (files[name].length, files[name].sha256) != (listed.length, listed.sha256):
            raise BundleCheckError(f"{name} changed while {manifest.label} was installed")
    record = InstallRecord(
        directory=destination.name,
        name=manifest.name,
        version=manifest.version,
        channel=channel,
        target_path=export.target_path,
        target_length=export.bundle.length,
        target_hashes={"sha256": export.bundle.sha256},
        files=files,
        installed_at=now,
        root_version=export.root_version,
        source=source,
    )
    previous = _switch(home, record)
    return InstallResult(
        record=record, previous=previous, license=verified, warnings=license_warnings(verified)
    )


#### Checking before every run ####


@dataclass(frozen=True)
class InstalledModel:
    """The model to score with, after the license and the installed files verified."""

    model: GroomingModel
    manifest: dict[str, Any]
    record: InstallRecord | None = None
    license: VerifiedLicense | None = None
    warnings: tuple[str, ...] = ()

    @property
    def bundle(self) -> str:
        name = self.manifest.get("name") or "vigil"
        version = self.manifest.get("version") or "unpublished"
        return f"{name}-{version}"


def verify_installed_files(home: EngineHome, record: InstallRecord) -> Path:
    """The installed bundle's directory, after every file matched its recorded digest.

    Raises:
        BundleCheckError: A file is missing, not a plain file, or was changed.
    """
    directory = home.bundles / record.directory
    if directory.is_symlink() or not directory.is_dir():
        raise BundleCheckError(
            f"installed bundle {record.label} is missing from {directory}; reinstall it"
        )
    for name, expected in sorted(record.files.items()):
        path = directory / name
        if path.is_symlink() or not path.is_file():
            raise BundleCheckError(
                f"installed bundle {record.label}: {name} is missing; reinstall the bundle"
            )
        actual = _digest(path)
        if actual != expected:
            raise BundleCheckError(
                f"installed bundle {record.label}: {name} was modified after install "
                "(its SHA-256 differs from the verified one); reinstall the bundle"
            )
    return directory


def current_record(home: EngineHome) -> InstallRecord | None:
    return read_record(home.current_record_file)


def load_installed_model(home: EngineHome) -> InstalledModel:
    """Verify the license and the installed bundle, then load the model.

    Raises:
        LicenseCheckError: The license cannot score (exit 3).
        BundleCheckError, ModelError: Nothing installed, or the bundle fails (exit 4).
        BadInputError: config.json is invalid (exit 2).
    """
    if not home.license_file.is_file():
        stored_trust_root(home)  # raises with the hint to run init
        raise LicenseCheckError(f"{home.path} holds no license: run `vigil-engine init`")
    record = current_record(home)
    if record is None:
        raise BundleCheckError(
            f"no bundle installed in {home.path}: run `vigil-engine install BUNDLE_FILE`"
        )
    now = trust.clock()
    check_clock(home, now, advance=True)
    verified = verify_stored_license(home, now)
    check_entitled(verified.claims, record.channel, record.label)
    directory = verify_installed_files(home, record)
    # The model stack (scikit-learn, SciPy) loads only for commands that score: init,
    # install, update and status start in a fraction of the time without it.
    from scoring_engine.model.directory import load_model_dir  # noqa: PLC0415

    model, manifest = load_model_dir(directory)
    if (manifest.get("name"), manifest.get("version")) != (record.name, record.version):
        raise BundleCheckError(f"installed manifest does not describe {record.label}")
    return InstalledModel(
        model=model,
        manifest=manifest,
        record=record,
        license=verified,
        warnings=license_warnings(verified),
    )


def describe_installed(home: EngineHome) -> dict[str, Any] | None:
    """The installed bundle as ``status`` shows it (None if nothing is installed)."""
    try:
        record = current_record(home)
    except VigilError as error:
        return {"installed": False, "integrity": str(error)}
    if record is None:
        return None
    try:
        previous = read_record(home.previous_record_file)
    except VigilError:
        previous = None
    try:
        verify_installed_files(home, record)
        integrity = "verified"
    except VigilError as error:
        integrity = str(error)
    return {
        "installed": True,
        "name": record.name,
        "version": record.version,
        "label": record.label,
        "channel": record.channel,
        "installed_at": isoformat_z(record.installed_at),
        "sha256": record.target_hashes.get("sha256"),
        "integrity": integrity,
        "previous_version": previous.version if previous else None,
    }
