# Copyright 2026 Vigil contributors
# SPDX-License-Identifier: Apache-2.0
"""Vigil licensing: keys, license tokens, the TUF update repository and bundles.

A pure library: no web framework, no database, and it imports neither
``portal`` nor ``scoring_engine``. The portal calls it to sign; the engine
calls it to verify. Each module's docstring states the rules it enforces:

- ``licensing.keys``: Ed25519 keys, encrypted storage, key ids, JWK/PEM.
- ``licensing.tokens``: license tokens (compact JWS) and the clock high-water mark.
- ``licensing.repository``: the portal's TUF repository (signing side).
- ``licensing.client``: the engine's TUF client (verification side).
- ``licensing.bundles``: model bundle build, verification and safe extraction.
- ``licensing.export``: bundle exports for air-gapped installs.
- ``licensing.targets``: license keys, revocation list, channel index documents.
- ``licensing.config``: every size limit and time tolerance.
- ``licensing.exceptions``: the error tree, with exit codes.
"""

from licensing.bundles import (
    BundleManifest,
    VerifiedBundle,
    build_bundle,
    check_engine_compatible,
    check_not_rollback,
    read_bundle,
)
from licensing.client import LocalFileFetcher, UpdateClient
from licensing.config import DEFAULT_CONFIG, LicensingConfig
from licensing.exceptions import (
    BundleError,
    BundleRollbackError,
    BundleVerificationError,
    ClockRollbackError,
    ExpiredMetadataError,
    IncompatibleEngineError,
    InvalidLicenseError,
    LicenseError,
    LicenseExpiredError,
    LicenseNotYetValidError,
    LicenseRevokedError,
    LicensingError,
    RepositoryError,
    RepositoryUnreachableError,
    SigningKeyError,
    UnsafeBundleError,
)
from licensing.export import VerifiedExport, export_bundle, verify_exported_bundle
from licensing.repository import Repository, RepositoryExpiries
from licensing.tokens import (
    HighWaterMark,
    LicenseClaims,
    LicenseStatus,
    VerifiedLicense,
    issue_license,
    verify_license,
)

__all__ = [
    "DEFAULT_CONFIG",
    "BundleError",
    "BundleManifest",
    "BundleRollbackError",
    "BundleVerificationError",
    "ClockRollbackError",
    "ExpiredMetadataError",
    "HighWaterMark",
    "IncompatibleEngineError",
    "InvalidLicenseError",
    "LicenseClaims",
    "LicenseError",
    "LicenseExpiredError",
    "LicenseNotYetValidError",
    "LicenseRevokedError",
    "LicenseStatus",
    "LicensingConfig",
    "LicensingError",
    "LocalFileFetcher",
    "Repository",
    "RepositoryError",
    "RepositoryExpiries",
    "RepositoryUnreachableError",
    "SigningKeyError",
    "UnsafeBundleError",
    "UpdateClient",
    "VerifiedBundle",
    "VerifiedExport",
    "VerifiedLicense",
    "build_bundle",
    "check_engine_compatible",
    "check_not_rollback",
    "export_bundle",
    "issue_license",
    "read_bundle",
    "verify_exported_bundle",
    "verify_license",
]
