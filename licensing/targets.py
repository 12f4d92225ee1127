# Copyright 2026 Vigil contributors
# SPDX-License-Identifier: Apache-2.0
"""The licensing documents delivered as signed TUF targets, and target names.

Target paths (fixed; engines look them up by these names):

- ``licensing/keys.json``: the license-signing public keys, kid to JWK.
- ``licensing/revocations.json``: revoked license ids with reasons.
- ``channels/<channel>.json``: which bundle is current on a channel.
- ``bundles/<channel>/<name>-<version>.tar``: model bundles.

Rules enforced when a document is read:

- Its size is at most ``max_metadata_bytes`` before it is parsed.
- It is strict JSON (no duplicate keys, no NaN) carrying its own ``type``, so
  one kind of document cannot be passed off as another.
- Every key id in ``keys.json`` equals the SHA-256 of the key it names, and
  only Ed25519 public keys are accepted.
- Revocation and key-set versions are positive integers that only grow;
  ``check_not_older_than`` refuses a document older than one already seen.

These documents are only trusted after TUF verified their length and hashes
against signed targets metadata; parsing here adds structure, not trust.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar, Final

from licensing._util import (
    canonical_json,
    isoformat_z,
    parse_isoformat,
    require_aware,
    strict_json_loads,
)
from licensing.config import DEFAULT_CONFIG, LicensingConfig
from licensing.exceptions import RepositoryError, SigningKeyError
from licensing.keys import key_id, public_key_from_jwk, public_key_to_jwk

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from datetime import datetime

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

LICENSE_KEYS_TARGET: Final = "licensing/keys.json"
REVOCATIONS_TARGET: Final = "licensing/revocations.json"

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_VERSION = re.compile(r"^[0-9]{1,9}(\.[0-9]{1,9}){0,4}$")


def _check_name(value: str, what: str) -> str:
    if not _NAME.fullmatch(value) or ".." in value:
        raise ValueError(f"{what} {value!r} must match {_NAME.pattern}")
    return value


def channel_index_target(channel: str) -> str:
    """Target path of the channel index, e.g. ``channels/stable.json``."""
    return f"channels/{_check_name(channel, 'channel')}.json"


def bundle_target_path(channel: str, name: str, version: str) -> str:
    """Target path of a bundle, e.g. ``bundles/stable/reference-2026.11.0.tar``."""
    if not _VERSION.fullmatch(version):
        raise ValueError(f"version {version!r} must be dotted numbers")
    return f"bundles/{_check_name(channel, 'channel')}/{_check_name(name, 'name')}-{version}.tar"


def _parse_document(data: bytes, kind: str, config: LicensingConfig) -> dict[str, Any]:
    if len(data) > config.max_metadata_bytes:
        raise RepositoryError(f"{kind} document is larger than {config.max_metadata_bytes} bytes")
    try:
        document = strict_json_loads(data)
    except (ValueError, UnicodeError):
        raise RepositoryError(f"{kind} document is not valid JSON") from None
    if not isinstance(document, dict) or document.get("type") != kind:
        raise RepositoryError(f"document is not of type {kind!r}")
    version = document.get("version")
    if type(version) is not int or version < 0:
        raise RepositoryError(f"{kind} version must be a non-negative integer")
    return document


@dataclass(frozen=True)
class Revocation:
    license_id: str
    reason: str
    revoked_at: datetime

    def __post_init__(self) -> None:
        if not self.license_id:
            raise ValueError("license_id must not be empty")
        object.__setattr__(
            self, "revoked_at", require_aware(self.revoked_at, "revoked_at").replace(microsecond=0)
        )


@dataclass(frozen=True)
class RevocationList:
    """Revoked licenses; ``version`` grows by one with every change."""

    TYPE: ClassVar[str] = "vigil-revocations"

    version: int = 0
    revocations: tuple[Revocation, ...] = ()

    @property
    def revoked_ids(self) -> frozenset[str]:
        return frozenset(item.license_id for item in self.revocations)

    def with_revocation(self, license_id: str, reason: str, revoked_at: datetime) -> RevocationList:
        """A new version listing ``license_id`` (unchanged if it is already listed)."""
        if license_id in self.revoked_ids:
            return self
        entry = Revocation(license_id=license_id, reason=reason, revoked_at=revoked_at)
        return replace(self, version=self.version + 1, revocations=(*self.revocations, entry))

    def check_not_older_than(self, previous: RevocationList | None) -> None:
        """Refuse to replace a known list with an older one.

        Raises:
            RepositoryError: ``self`` is older than ``previous``.
        """
        if previous is not None and self.version < previous.version:
            raise RepositoryError(
                f"revocation list version {self.version} is older than "
                f"version {previous.version} already seen"
            )

    def to_bytes(self) -> bytes:
        return canonical_json(
            {
                "type": self.TYPE,
                "version": self.version,
                "revoked": [
                    {
                        "license_id": item.license_id,
                        "reason": item.reason,
                        "revoked_at": isoformat_z(item.revoked_at),
                    }
                    for item in self.revocations
                ],
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes, config: LicensingConfig = DEFAULT_CONFIG) -> RevocationList:
        """Parse a revocation list.

        Raises:
            RepositoryError: The document is oversized or malformed.
        """
        document = _parse_document(data, cls.TYPE, config)
        entries = document.get("revoked")
        if not isinstance(entries, list):
            raise RepositoryError("revocation list has no 'revoked' list")
        revocations = []
        for entry in entries:
            if not (
                isinstance(entry, dict)
                and isinstance(entry.get("license_id"), str)
                and isinstance(entry.get("reason"), str)
                and isinstance(entry.get("revoked_at"), str)
            ):
                raise RepositoryError("malformed revocation entry")
            try:
                revocations.append(
                    Revocation(
                        license_id=entry["license_id"],
                        reason=entry["reason"],
                        revoked_at=parse_isoformat(entry["revoked_at"]),
                    )
                )
            except ValueError:
                raise RepositoryError("malformed revocation entry") from None
        return cls(version=document["version"], revocations=tuple(revocations))


@dataclass(frozen=True)
class LicenseKeySet:
    """License-signing public keys by key id; ``version`` grows with every change."""

    TYPE: ClassVar[str] = "vigil-license-keys"

    version: int = 0
    keys: Mapping[str, Ed25519PublicKey] = field(default_factory=dict)

    @classmethod
    def of(cls, public_keys: Iterable[Ed25519PublicKey], *, version: int) -> LicenseKeySet:
        return cls(version=version, keys={key_id(key): key for key in public_keys})

    def check_not_older_than(self, previous: LicenseKeySet | None) -> None:
        """Raises RepositoryError if ``self`` is older than ``previous``."""
        if previous is not None and self.version < previous.version:
            raise RepositoryError(
                f"license key set version {self.version} is older than "
                f"version {previous.version} already seen"
            )

    def to_bytes(self) -> bytes:
        return canonical_json(
            {
                "type": self.TYPE,
                "version": self.version,
                "keys": {kid: public_key_to_jwk(key) for kid, key in self.keys.items()},
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes, config: LicensingConfig = DEFAULT_CONFIG) -> LicenseKeySet:
        """Parse a license key set.

        Raises:
            RepositoryError: The document is oversized or malformed, or a key id
                does not match its key.
        """
        document = _parse_document(data, cls.TYPE, config)
        entries = document.get("keys")
        if not isinstance(entries, dict):
            raise RepositoryError("license key set has no 'keys' object")
        keys: dict[str, Ed25519PublicKey] = {}
        for kid, jwk in entries.items():
            if not isinstance(jwk, dict):
                raise RepositoryError(f"license key {kid} is not a JWK object")
            try:
                key = public_key_from_jwk(jwk)
            except SigningKeyError as error:
                raise RepositoryError(f"license key {kid}: {error}") from None
            if key_id(key) != kid:
                raise RepositoryError(f"license key id {kid} does not match its key")
            keys[kid] = key
        return cls(version=document["version"], keys=keys)


@dataclass(frozen=True)
class ChannelIndex:
    """Which bundle is current on a channel (``channels/<channel>.json``)."""

    TYPE: ClassVar[str] = "vigil-channel"

    channel: str
    name: str
    bundle_version: str
    target: str
    version: int = 1

    def to_bytes(self) -> bytes:
        return canonical_json(
            {
                "type": self.TYPE,
                "version": self.version,
                "channel": self.channel,
                "name": self.name,
                "bundle_version": self.bundle_version,
                "target": self.target,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes, config: LicensingConfig = DEFAULT_CONFIG) -> ChannelIndex:
        """Parse a channel index; its target must be the bundle path it names.

        Raises:
            RepositoryError: The document is oversized or malformed.
        """
        document = _parse_document(data, cls.TYPE, config)
        try:
            index = cls(
                channel=document["channel"],
                name=document["name"],
                bundle_version=document["bundle_version"],
                target=document["target"],
                version=document["version"],
            )
            expected = bundle_target_path(index.channel, index.name, index.bundle_version)
        except (KeyError, TypeError, ValueError):
            raise RepositoryError("malformed channel index") from None
        if index.target != expected:
            raise RepositoryError("channel index points outside its channel's bundles")
        return index
