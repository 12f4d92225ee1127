# Copyright 2026 Vigil contributors
# SPDX-License-Identifier: Apache-2.0
"""Size limits and time tolerances of the licensing library, in one place.

Like ``tuf/ngclient/config.py``: every limit a verifier applies to untrusted
input is a field here, so nothing parses an unbounded input and a deployment
can see (and tune) every bound at once. Sizes are checked before the input is
parsed, decompressed or extracted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from tuf.ngclient.config import UpdaterConfig

_KIB = 1024
_MIB = 1024 * _KIB


@dataclass(frozen=True)
class LicensingConfig:
    """Limits applied while verifying licenses, bundles and update metadata.

    Attributes:
        max_token_bytes: Largest license token accepted (checked before decoding).
        max_bundle_bytes: Largest bundle file accepted (checked before hashing).
        max_member_bytes: Largest single member of a bundle archive.
        max_manifest_bytes: Largest ``manifest.json`` inside a bundle.
        max_metadata_bytes: Largest TUF metadata file, and largest JSON target
            of the licensing family (license keys, revocation list, channel index).
        max_export_members: Most members an exported-bundle archive may hold.
        max_root_rotations: Most root versions a client walks in one update.
        leeway: Tolerance for clock skew on ``nbf``/``exp`` and the clock
            high-water mark.
        grace: How long after ``exp`` a license still scores (status ``in_grace``).
    """

    max_token_bytes: int = 8 * _KIB
    max_bundle_bytes: int = 512 * _MIB
    max_member_bytes: int = 512 * _MIB
    max_manifest_bytes: int = 1 * _MIB
    max_metadata_bytes: int = 2 * _MIB
    max_export_members: int = 512
    max_root_rotations: int = 256
    leeway: timedelta = timedelta(seconds=60)
    grace: timedelta = timedelta(days=14)

    def __post_init__(self) -> None:
        for name in (
            "max_token_bytes",
            "max_bundle_bytes",
            "max_member_bytes",
            "max_manifest_bytes",
            "max_metadata_bytes",
            "max_export_members",
            "max_root_rotations",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.leeway < timedelta(0) or self.grace < timedelta(0):
            raise ValueError("leeway and grace must not be negative")

    @property
    def max_export_bytes(self) -> int:
        """Largest exported-bundle archive: one bundle plus its metadata."""
        return self.max_bundle_bytes + self.max_export_members * self.max_metadata_bytes

    def updater_config(self) -> UpdaterConfig:
        """The python-tuf client configuration carrying these limits."""
        return UpdaterConfig(
            max_root_rotations=self.max_root_rotations,
            root_max_length=self.max_metadata_bytes,
            timestamp_max_length=self.max_metadata_bytes,
            snapshot_max_length=self.max_metadata_bytes,
            targets_max_length=self.max_metadata_bytes,
        )


DEFAULT_CONFIG = LicensingConfig()
