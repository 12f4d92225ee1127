# Copyright 2026 Vigil contributors
# SPDX-License-Identifier: Apache-2.0
"""Model bundles (SPEC §7): building, verifying and extracting them.

A bundle is an **uncompressed** tar holding exactly ``manifest.json``,
``model.skops`` and ``MODEL_CARD.md``, written reproducibly (sorted members,
mtime 0, uid/gid 0, mode 0644). No compression because ``model.skops`` is
already a zip archive (gzip gains little), and because an uncompressed tar's
member sizes are the bytes that land on disk: size limits hold exactly and no
decompression bomb is possible. Readers refuse compressed input.

``read_bundle`` enforces, in this order:

1. The file is at most ``max_bundle_bytes`` (``UnsafeBundleError``), and its
   length and hashes equal the expected ones from signed TUF metadata
   (``BundleVerificationError``) — all before the tar is opened.
2. Safe extraction (``licensing._tar``): only the three expected members, as
   plain files, no links, no absolute paths or ``..``, each within its size
   limit, extracted with the ``"data"`` filter (``UnsafeBundleError``).
3. The manifest is strict JSON of the expected shape, and the length and
   SHA-256 of ``model.skops`` and ``MODEL_CARD.md`` equal the digests it
   lists (``BundleVerificationError``).

The extraction directory must be missing or empty; if a check fails after
extraction began it is removed, so no unverified model file is left where an
engine could load it (a directory that already held files is never touched).

Installing also requires ``check_engine_compatible`` (the manifest's engine
version range admits this engine) and ``check_not_rollback`` (never older
than the installed bundle). Versions are dotted numbers compared numerically
(``2026.11.0`` > ``2026.9.3``); ranges are comma-separated clauses such as
``>=0.1,<1.0``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from licensing._tar import prepare_empty_directory, safe_extract, write_deterministic_tar
from licensing._util import (
    digests_equal,
    isoformat_z,
    parse_isoformat,
    pretty_json,
    require_aware,
    sha256_file,
    strict_json_loads,
)
from licensing.config import DEFAULT_CONFIG, LicensingConfig
from licensing.exceptions import (
    BundleRollbackError,
    BundleVerificationError,
    IncompatibleEngineError,
    UnsafeBundleError,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime
    from typing import IO

MANIFEST_NAME: Final = "manifest.json"
MODEL_NAME: Final = "model.skops"
MODEL_CARD_NAME: Final = "MODEL_CARD.md"
BUNDLE_MEMBERS: Final = frozenset({MANIFEST_NAME, MODEL_NAME, MODEL_CARD_NAME})
DIGESTED_MEMBERS: Final = (MODEL_NAME, MODEL_CARD_NAME)
MANIFEST_FORMAT: Final = 1

_HASH_ALGORITHMS: Final = frozenset({"sha256", "sha384", "sha512"})
_VERSION: Final = re.compile(r"[0-9]{1,9}(\.[0-9]{1,9}){0,4}")
_RELEASE_PREFIX: Final = re.compile(r"[0-9]{1,9}(\.[0-9]{1,9}){0,4}")
_CLAUSE: Final = re.compile(r"\s*(>=|<=|==|!=|>|<)\s*([0-9][0-9.]*)\s*")
_NAME: Final = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_SHA256_HEX: Final = re.compile(r"[0-9a-f]{64}")
_CHUNK: Final = 64 * 1024


#### Versions ####


def parse_version(version: str) -> tuple[int, ...]:
    """``"2026.11.0"`` to ``(2026, 11, 0)``; trailing zeros do not matter.

    Raises:
        ValueError: Not one to five dot-separated numbers.
    """
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        raise ValueError(f"version {version!r} must be dotted numbers such as 2026.11.0")
    parts = [int(part) for part in version.split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def parse_version_range(spec: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """``">=0.1,<1.0"`` to ``((">=", (0, 1)), ("<", (1,)))``.

    Raises:
        ValueError: Empty, or a clause is not ``OP VERSION``.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError("engine version range must not be empty")
    clauses = []
    for clause in spec.split(","):
        match = _CLAUSE.fullmatch(clause)
        if match is None:
            raise ValueError(f"engine version clause {clause!r} must be OP VERSION")
        clauses.append((match.group(1), parse_version(match.group(2))))
    return tuple(clauses)


_COMPARATORS: Final = {
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


def version_in_range(version: str, spec: str) -> bool:
    """Whether ``version`` satisfies every clause of ``spec``.

    Only the leading release number of ``version`` counts, so a development
    engine ``0.2.0.dev1`` or ``0.2.0+local`` compares as ``0.2.0``.

    Raises:
        ValueError: ``version`` or ``spec`` is malformed.
    """
    match = _RELEASE_PREFIX.match(version)
    if match is None:
        raise ValueError(f"version {version!r} does not start with dotted numbers")
    release = parse_version(match.group(0))
    return all(_COMPARATORS[op](release, bound) for op, bound in parse_version_range(spec))


#### Manifest ####


@dataclass(frozen=True)
class FileDigest:
    length: int
    sha256: str


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass(frozen=True)
class BundleManifest:
    """The ``manifest.json`` of a bundle.

    ``files`` lists the length and SHA-256 of ``model.skops`` and
    ``MODEL_CARD.md``; ``build_bundle`` fills it in. Keys this version does
    not know are kept in ``extra`` and written back unchanged.
    """

    name: str
    version: str
    created: datetime
    engine_version: str
    training_data_digest: str
    metrics: Mapping[str, Any]
    recommended_threshold: float
    characteristics: tuple[str, ...]
    files: Mapping[str, FileDigest] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _require(isinstance(self.name, str) and bool(_NAME.fullmatch(self.name)), "bad name")
        parse_version(self.version)
        object.__setattr__(self, "created", require_aware(self.created, "created"))
        parse_version_range(self.engine_version)
        _require(
            isinstance(self.training_data_digest, str) and bool(self.training_data_digest),
            "training_data_digest must be a non-empty string",
        )
        _require(isinstance(self.metrics, Mapping), "metrics must be an object")
        threshold = self.recommended_threshold
        _require(
            type(threshold) in (int, float) and 0.0 <= threshold <= 1.0,
            "recommended_threshold must be a number in [0, 1]",
        )
        object.__setattr__(self, "recommended_threshold", float(threshold))
        characteristics = tuple(self.characteristics)
        _require(
            all(isinstance(item, str) and item for item in characteristics),
            "characteristics must be non-empty strings",
        )
        object.__setattr__(self, "characteristics", characteristics)
        for name, digest in self.files.items():
            _require(name in DIGESTED_MEMBERS, f"unexpected file {name!r} in manifest")
            _require(
                type(digest.length) is int and digest.length >= 0,
                f"bad length for {name}",
            )
            _require(
                isinstance(digest.sha256, str) and bool(_SHA256_HEX.fullmatch(digest.sha256)),
                f"bad sha256 for {name}",
            )

    @property
    def label(self) -> str:
        """``name-version``, as scores name their bundle (SPEC §3)."""
        return f"{self.name}-{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.extra,
            "format": MANIFEST_FORMAT,
            "name": self.name,
            "version": self.version,
            "created": isoformat_z(self.created),
            "engine_version": self.engine_version,
            "training_data_digest": self.training_data_digest,
            "metrics": dict(self.metrics),
            "recommended_threshold": self.recommended_threshold,
            "characteristics": list(self.characteristics),
            "files": {
                name: {"length": digest.length, "sha256": digest.sha256}
                for name, digest in sorted(self.files.items())
            },
        }

    def to_bytes(self) -> bytes:
        return pretty_json(self.to_dict())

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> BundleManifest:
        """Parse a manifest strictly.

        Raises:
            BundleVerificationError: A field is missing or malformed.
        """
        known = {
            "format",
            "name",
            "version",
            "created",
            "engine_version",
            "training_data_digest",
            "metrics",
            "recommended_threshold",
            "characteristics",
            "files",
        }
        try:
            _require(document.get("format") == MANIFEST_FORMAT, "unsupported manifest format")
            files_doc = document.get("files", {})
            _require(isinstance(files_doc, dict), "files must be an object")
            files = {}
            for name, entry in files_doc.items():
                _require(isinstance(entry, dict), f"bad entry for {name}")
                files[name] = FileDigest(length=entry.get("length"), sha256=entry.get("sha256"))
            characteristics = document["characteristics"]
            _require(isinstance(characteristics, list), "characteristics must be a list")
            created = document["created"]
            _require(isinstance(created, str), "created must be a timestamp string")
            return cls(
                name=document["name"],
                version=document["version"],
                created=parse_isoformat(created),
                engine_version=document["engine_version"],
                training_data_digest=document["training_data_digest"],
                metrics=document["metrics"],
                recommended_threshold=document["recommended_threshold"],
                characteristics=tuple(characteristics),
                files=files,
                extra={key: value for key, value in document.items() if key not in known},
            )
        except (KeyError, TypeError, ValueError) as error:
            raise BundleVerificationError(f"invalid bundle manifest: {error}") from None

    @classmethod
    def from_bytes(cls, data: bytes, config: LicensingConfig = DEFAULT_CONFIG) -> BundleManifest:
        if len(data) > config.max_manifest_bytes:
            raise UnsafeBundleError("bundle manifest is too large")
        try:
            document = strict_json_loads(data)
        except (ValueError, UnicodeError):
            raise BundleVerificationError("bundle manifest is not valid JSON") from None
        if not isinstance(document, dict):
            raise BundleVerificationError("bundle manifest is not a JSON object")
        return cls.from_dict(document)


#### Building ####


def _file_digest(path: Path) -> FileDigest:
    with path.open("rb") as handle:
        length, sha256 = sha256_file(handle)
    return FileDigest(length=length, sha256=sha256)


def build_bundle(
    model_dir: Path,
    out_path: Path,
    manifest: BundleManifest,
    *,
    config: LicensingConfig = DEFAULT_CONFIG,
) -> BundleManifest:
    """Write the bundle of ``model_dir``'s ``model.skops`` and ``MODEL_CARD.md``.

    The written manifest is ``manifest`` with ``files`` set to the digests of
    the two files; it is returned. The archive is reproducible: the same
    inputs give the same bytes.

    Raises:
        FileNotFoundError: A model file is missing.
        UnsafeBundleError: A file or the bundle exceeds the size limits.
    """
    sources = {name: model_dir / name for name in DIGESTED_MEMBERS}
    digests = {name: _file_digest(path) for name, path in sources.items()}
    for name, digest in digests.items():
        if digest.length > config.max_member_bytes:
            raise UnsafeBundleError(f"{name} is larger than {config.max_member_bytes} bytes")
    final = replace(manifest, files=digests)
    manifest_bytes = final.to_bytes()
    if len(manifest_bytes) > config.max_manifest_bytes:
        raise UnsafeBundleError("bundle manifest is too large")
    write_deterministic_tar(out_path, {MANIFEST_NAME: manifest_bytes, **sources})
    if out_path.stat().st_size > config.max_bundle_bytes:
        out_path.unlink()
        raise UnsafeBundleError(f"bundle is larger than {config.max_bundle_bytes} bytes")
    # The sources could change while being archived: re-read what was written.
    with out_path.open("rb") as handle, tempfile.TemporaryDirectory(dir=out_path.parent) as scratch:
        _extract_and_check(handle, Path(scratch) / "check", config)
    return final


#### Reading ####


@dataclass(frozen=True)
class VerifiedBundle:
    """A bundle whose every check passed, extracted to ``directory``."""

    path: Path
    directory: Path
    manifest: BundleManifest
    length: int
    sha256: str

    @property
    def model_path(self) -> Path:
        return self.directory / MODEL_NAME

    @property
    def model_card_path(self) -> Path:
        return self.directory / MODEL_CARD_NAME


def _hash_open_file(handle: IO[bytes], algorithms: set[str]) -> tuple[int, dict[str, str]]:
    hashers = {name: hashlib.new(name) for name in algorithms}
    length = 0
    while chunk := handle.read(_CHUNK):
        length += len(chunk)
        for hasher in hashers.values():
            hasher.update(chunk)
    return length, {name: hasher.hexdigest() for name, hasher in hashers.items()}


def _member_limit(config: LicensingConfig) -> Callable[[str], int | None]:
    def limit(name: str) -> int | None:
        if name == MANIFEST_NAME:
            return min(config.max_manifest_bytes, config.max_member_bytes)
        if name in DIGESTED_MEMBERS:
            return config.max_member_bytes
        return None

    return limit


def _extract_and_check(
    handle: IO[bytes], destination: Path, config: LicensingConfig
) -> BundleManifest:
    files = safe_extract(
        handle,
        destination,
        member_limit=_member_limit(config),
        max_total=config.max_bundle_bytes,
        max_members=len(BUNDLE_MEMBERS),
    )
    missing = BUNDLE_MEMBERS - set(files)
    if missing:
        raise UnsafeBundleError(f"bundle lacks {sorted(missing)}")
    manifest = BundleManifest.from_bytes(files[MANIFEST_NAME].read_bytes(), config)
    for name in DIGESTED_MEMBERS:
        listed = manifest.files.get(name)
        if listed is None:
            raise BundleVerificationError(f"bundle manifest lists no digest for {name}")
        actual = _file_digest(files[name])
        if actual.length != listed.length or not digests_equal(actual.sha256, listed.sha256):
            raise BundleVerificationError(f"{name} does not match the digest in the manifest")
    return manifest


def read_bundle(
    path: Path,
    destination: Path,
    *,
    expected_length: int | None = None,
    expected_hashes: Mapping[str, str] | None = None,
    config: LicensingConfig = DEFAULT_CONFIG,
) -> VerifiedBundle:
    """Verify the bundle at ``path`` and extract it into ``destination``.

    Args:
        path: The bundle file.
        destination: A directory that does not exist yet or is empty.
        expected_length: Length from signed metadata (TUF ``TargetFile.length``).
        expected_hashes: Algorithm to hex digest from signed metadata
            (TUF ``TargetFile.hashes``); ``sha256``, ``sha384``, ``sha512``.
        config: Size limits.

    Raises:
        UnsafeBundleError, BundleVerificationError: See the module docstring.
    """
    if expected_hashes is not None:
        if not expected_hashes:
            raise BundleVerificationError("no expected hash given")
        unknown = set(expected_hashes) - _HASH_ALGORITHMS
        if unknown:
            raise BundleVerificationError(f"unsupported hash algorithms {sorted(unknown)}")
    algorithms = {"sha256", *(expected_hashes or {})}

    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > config.max_bundle_bytes:
            raise UnsafeBundleError(f"bundle is larger than {config.max_bundle_bytes} bytes")
        if expected_length is not None and size != expected_length:
            raise BundleVerificationError(
                f"bundle length {size} differs from the signed length {expected_length}"
            )
        length, digests = _hash_open_file(handle, algorithms)
        if length != size:
            raise BundleVerificationError("bundle changed while it was read")
        for algorithm, expected in (expected_hashes or {}).items():
            if not digests_equal(digests[algorithm], expected):
                raise BundleVerificationError(f"bundle {algorithm} differs from the signed hash")
        handle.seek(0)
        # Checked before the try: a directory that held files is never removed.
        prepare_empty_directory(destination)
        try:
            manifest = _extract_and_check(handle, destination, config)
        except BaseException:
            shutil.rmtree(destination, ignore_errors=True)
            raise

    return VerifiedBundle(
        path=path,
        directory=destination,
        manifest=manifest,
        length=size,
        sha256=digests["sha256"],
    )


#### Installation checks ####


def check_engine_compatible(manifest: BundleManifest, engine_version: str) -> None:
    """Raises IncompatibleEngineError unless ``engine_version`` is in the
    manifest's ``engine_version`` range.
    """
    try:
        compatible = version_in_range(engine_version, manifest.engine_version)
    except ValueError as error:
        raise IncompatibleEngineError(str(error)) from None
    if not compatible:
        raise IncompatibleEngineError(
            f"bundle {manifest.label} needs engine {manifest.engine_version}; "
            f"this engine is {engine_version}"
        )


def check_not_rollback(new_version: str, installed_version: str | None) -> None:
    """Raises BundleRollbackError if ``new_version`` is older than the
    installed one. Reinstalling the same version is allowed.
    """
    if installed_version is None:
        return
    try:
        older = parse_version(new_version) < parse_version(installed_version)
    except ValueError as error:
        raise BundleRollbackError(str(error)) from None
    if older:
        raise BundleRollbackError(
            f"bundle version {new_version} is older than installed version {installed_version}"
        )
