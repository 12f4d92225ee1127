# Copyright 2026 Vigil contributors
# SPDX-License-Identifier: Apache-2.0
"""Errors raised by the licensing library.

Names follow python-tuf (``tuf/api/exceptions.py``): one family per thing that
can be wrong, each ending in ``Error``. Every class carries the process exit
code (SPEC §6) a command line should use when the error reaches it, so the
portal and engine CLIs map errors to exit codes in one place:

- ``LicenseError`` and its subclasses: 3 (license problem).
- ``BundleError``, ``RepositoryError`` and their subclasses: 4 (bundle or
  update-verification problem).
- ``RepositoryUnreachableError``: 5 (portal unreachable).
- ``SigningKeyError``: 2 (the operator supplied an unusable key or passphrase).

Messages say what failed and never include secret material (passphrases,
private keys, whole tokens).
"""

from __future__ import annotations

from typing import ClassVar


class LicensingError(Exception):
    """Base class of every error raised by ``licensing``."""

    exit_code: ClassVar[int] = 1


#### License errors (exit code 3) ####


class LicenseError(LicensingError):
    """The license cannot be used to score."""

    exit_code: ClassVar[int] = 3


class InvalidLicenseError(LicenseError):
    """The token is malformed, too large, wrongly signed, or uses a wrong
    ``alg``, ``typ`` or ``kid``, or its claims are missing or ill-typed.
    """


class LicenseNotYetValidError(LicenseError):
    """The reference time is before ``nbf`` (or ``iat``) beyond the leeway."""


class LicenseExpiredError(LicenseError):
    """The reference time is past ``exp`` plus the grace period."""


class LicenseRevokedError(LicenseError):
    """The license id (``jti``) is on the signed revocation list."""


class ClockRollbackError(LicenseError):
    """The reference time is earlier than a time already observed.

    Raised when the clock was set back to keep an expired license alive.
    """


#### Bundle errors (exit code 4) ####


class BundleError(LicensingError):
    """The bundle cannot be installed or used."""

    exit_code: ClassVar[int] = 4


class BundleVerificationError(BundleError):
    """Length, hash, signature or manifest check of a bundle failed."""


class BundleRollbackError(BundleError):
    """The bundle is older than the one already installed."""


class IncompatibleEngineError(BundleError):
    """The bundle requires an engine version this engine is not."""


class UnsafeBundleError(BundleError):
    """The archive is oversized or holds members that could escape the
    extraction directory (absolute paths, ``..``, links, devices) or that
    are not expected.
    """


#### Repository errors (exit code 4) ####


class RepositoryError(LicensingError):
    """TUF metadata or a repository's state failed to verify or load."""

    exit_code: ClassVar[int] = 4


class ExpiredMetadataError(RepositoryError):
    """Trusted TUF metadata is expired at the reference time."""


class RepositoryUnreachableError(RepositoryError):
    """The update repository could not be reached (network or server error)."""

    exit_code: ClassVar[int] = 5


#### Key errors (exit code 2) ####


class SigningKeyError(LicensingError):
    """A key is unusable: wrong type, wrong passphrase, missing encryption,
    mismatched key id, or not enough keys to meet a signing threshold.
    """

    exit_code: ClassVar[int] = 2
