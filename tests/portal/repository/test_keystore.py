"""Signing keys on disk: encrypted, private, numbered, never overwritten."""

from __future__ import annotations

import stat
from typing import TYPE_CHECKING

import pytest

from licensing.exceptions import SigningKeyError
from portal.errors import ConfigurationError
from portal.repository.keystore import KeyRole, KeyStore
from tests.portal.support import PASSPHRASE

if TYPE_CHECKING:
    from pathlib import Path


def test_keys_are_encrypted_and_readable_by_their_owner_only(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys", PASSPHRASE, allow_unencrypted=False)
    stored = store.create(KeyRole.TARGETS)
    assert stored.path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert stat.S_IMODE(stored.path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert store.load_current(KeyRole.TARGETS).key_id == stored.key_id


def test_newest_key_is_current_and_older_keys_stay(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys", PASSPHRASE, allow_unencrypted=False)
    first = store.create(KeyRole.LICENSE)
    second = store.create(KeyRole.LICENSE)
    assert first.path.name.startswith("0001-")
    assert second.path.name.startswith("0002-")
    assert store.load_current(KeyRole.LICENSE).key_id == second.key_id
    assert first.path.exists()


def test_discarding_an_unused_key_makes_the_previous_one_current(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys", PASSPHRASE, allow_unencrypted=False)
    first = store.create(KeyRole.ROOT)
    store.discard(store.create(KeyRole.ROOT))
    assert store.current_path(KeyRole.ROOT) == first.path


def test_wrong_passphrase_is_refused(tmp_path: Path) -> None:
    KeyStore(tmp_path / "keys", PASSPHRASE, allow_unencrypted=False).create(KeyRole.ROOT)
    other = KeyStore(tmp_path / "keys", "another passphrase", allow_unencrypted=False)
    with pytest.raises(SigningKeyError, match="wrong passphrase"):
        other.load_current(KeyRole.ROOT)


def test_without_passphrase_keys_are_refused_unless_allowed(tmp_path: Path) -> None:
    with pytest.raises(SigningKeyError, match="without a passphrase"):
        KeyStore(tmp_path / "keys", None, allow_unencrypted=False).create(KeyRole.ROOT)
    store = KeyStore(tmp_path / "dev-keys", None, allow_unencrypted=True)
    stored = store.create(KeyRole.ROOT)
    assert not store.encrypted
    assert stored.path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")


def test_a_missing_key_says_to_run_init(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys", PASSPHRASE, allow_unencrypted=False)
    with pytest.raises(ConfigurationError, match="vigil-portal init"):
        store.load_current(KeyRole.SNAPSHOT)
