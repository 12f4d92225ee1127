"""The portal's private signing keys on disk, under ``$VIGIL_PORTAL_HOME/keys/``.

Layout: one directory per role, one file per key generation::

    keys/root/0001-<key id prefix>.pem
    keys/targets/0001-....pem   keys/snapshot/...   keys/timestamp/...
    keys/license/0001-....pem   keys/license/0002-....pem  (after a rotation)

Rules:

- The current key of a role is the file with the highest sequence number;
  a rotation adds the next number and never overwrites or deletes an older
  key (old license keys still verify licenses they signed; an operator
  archives retired keys by hand).
- Files are PKCS#8 PEM encrypted with ``VIGIL_KEY_PASSPHRASE`` and mode 0600
  in a 0700 directory (``licensing.keys.save_private_key``). Without a
  passphrase they are written unencrypted, which the settings allow only in
  development; ``KeyStore.encrypted`` tells the caller to say so.
- The id in a file name is the TUF key id for TUF roles and the license
  ``kid`` for license keys, so an operator can match files to metadata.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Final

from licensing.keys import (
    UnencryptedKeyWarning,
    generate_private_key,
    key_id,
    load_private_key,
    save_private_key,
    tuf_public_key,
)
from portal.errors import ConfigurationError

if TYPE_CHECKING:
    from pathlib import Path

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

_KEY_FILE: Final = re.compile(r"([0-9]{4,})-[0-9a-f]{16}\.pem")


class KeyRole(StrEnum):
    ROOT = "root"
    TARGETS = "targets"
    SNAPSHOT = "snapshot"
    TIMESTAMP = "timestamp"
    LICENSE = "license"

    @property
    def is_tuf_role(self) -> bool:
        return self is not KeyRole.LICENSE


TUF_ROLES: Final = tuple(role for role in KeyRole if role.is_tuf_role)


def public_key_id(role: KeyRole, key: Ed25519PrivateKey) -> str:
    """The id under which ``key`` is listed: TUF key id, or license ``kid``."""
    return str(tuf_public_key(key).keyid) if role.is_tuf_role else key_id(key)


@dataclass(frozen=True)
class StoredKey:
    role: KeyRole
    path: Path
    key: Ed25519PrivateKey

    @property
    def key_id(self) -> str:
        return public_key_id(self.role, self.key)


class KeyStore:
    def __init__(self, directory: Path, passphrase: str | None, *, allow_unencrypted: bool) -> None:
        self.directory = directory
        self._passphrase = passphrase
        self._allow_unencrypted = allow_unencrypted

    @property
    def encrypted(self) -> bool:
        return self._passphrase is not None

    def _files(self, role: KeyRole) -> list[tuple[int, Path]]:
        role_dir = self.directory / role.value
        if not role_dir.is_dir():
            return []
        numbered = [
            (int(match.group(1)), path)
            for path in role_dir.iterdir()
            if (match := _KEY_FILE.fullmatch(path.name))
        ]
        return sorted(numbered)

    def has_key(self, role: KeyRole) -> bool:
        return bool(self._files(role))

    def current_path(self, role: KeyRole) -> Path:
        """Path of the role's current key.

        Raises:
            ConfigurationError: The role has no key.
        """
        files = self._files(role)
        if not files:
            raise ConfigurationError(
                f"no {role.value} key in {self.directory / role.value}: run 'vigil-portal init'"
            )
        return files[-1][1]

    def load_current(self, role: KeyRole) -> StoredKey:
        """The role's current key, decrypted.

        Raises:
            ConfigurationError: The role has no key.
            SigningKeyError: Wrong or missing passphrase, or a corrupt file.
        """
        path = self.current_path(role)
        return StoredKey(role=role, path=path, key=load_private_key(path, self._passphrase))

    def create(self, role: KeyRole) -> StoredKey:
        """Generate and store the role's next key, which becomes its current key."""
        files = self._files(role)
        number = files[-1][0] + 1 if files else 1
        key = generate_private_key()
        role_dir = self.directory / role.value
        for directory in (self.directory, role_dir):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = role_dir / f"{number:04d}-{public_key_id(role, key)[:16]}.pem"
        with warnings.catch_warnings():
            # The caller reports unencrypted storage once (``encrypted``), not per key.
            warnings.simplefilter("ignore", UnencryptedKeyWarning)
            save_private_key(key, path, self._passphrase, allow_unencrypted=self._allow_unencrypted)
        return StoredKey(role=role, path=path, key=key)

    def discard(self, stored: StoredKey) -> None:
        """Delete a key created by ``create`` that never came into use
        (its rotation failed), so the previous key is current again.
        """
        if stored.path == self.current_path(stored.role):
            stored.path.unlink()
