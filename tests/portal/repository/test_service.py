"""Initialising the portal's keys and repository, and rotating keys."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

import pytest

from licensing.export import verify_exported_bundle
from licensing.keys import key_id
from licensing.repository import Repository
from licensing.tokens import verify_license
from portal.bundles import service as bundle_service
from portal.bundles.models import Channel
from portal.errors import ConfigurationError
from portal.events.service import list_events
from portal.events.tags import EventTag
from portal.licenses.service import sign_license
from portal.repository import service
from portal.repository.keystore import TUF_ROLES, KeyRole
from tests.portal.support import ACTOR

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from sqlalchemy.orm import Session

    from portal.licenses.models import License
    from portal.settings import Settings


def _key_files(settings: Settings) -> list[Path]:
    return sorted(settings.keys_dir.rglob("*.pem"))


def test_init_creates_keys_repository_and_license_keys_target(
    session: Session, settings: Settings
) -> None:
    report = service.initialise_portal(session, settings, actor=ACTOR)
    assert report.created_keys == list(KeyRole)
    assert report.repository_created
    assert report.license_keys_published
    assert report.keys_encrypted
    repository = service.open_repository(settings)
    license_key = service.license_signing_key(settings)
    assert set(repository.license_keys().keys) == {license_key.key_id}
    tags = [event.tag for event in list_events(session)]
    assert tags.count(EventTag.KEY_CREATED) == len(KeyRole)
    assert EventTag.REPOSITORY_CREATED in tags


def test_init_twice_keeps_every_key_and_reports_what_exists(
    session: Session, settings: Settings
) -> None:
    service.initialise_portal(session, settings, actor=ACTOR)
    files = {path: path.read_bytes() for path in _key_files(settings)}
    root = service.open_repository(settings, signing=False).root_bytes()

    again = service.initialise_portal(session, settings, actor=ACTOR)

    assert again.created_keys == []
    assert again.existing_keys == list(KeyRole)
    assert not again.repository_created
    assert not again.license_keys_published
    assert {path: path.read_bytes() for path in _key_files(settings)} == files
    assert service.open_repository(settings, signing=False).root_bytes() == root


def test_init_refuses_a_repository_whose_keys_are_gone(
    session: Session, initialised: Settings
) -> None:
    shutil.rmtree(initialised.keys_dir / "timestamp")
    with pytest.raises(ConfigurationError, match="timestamp"):
        service.initialise_portal(session, initialised, actor=ACTOR)
    assert not (initialised.keys_dir / "timestamp").exists()


def test_init_refuses_keys_that_the_root_does_not_list(
    session: Session, initialised: Settings
) -> None:
    shutil.rmtree(initialised.keys_dir / "targets")
    service.keystore_for(initialised).create(KeyRole.TARGETS)
    with pytest.raises(ConfigurationError, match="restore"):
        service.initialise_portal(session, initialised, actor=ACTOR)


def test_unencrypted_keys_in_development_are_reported(session: Session, settings: Settings) -> None:
    settings = settings.model_copy(update={"key_passphrase": None})
    report = service.initialise_portal(session, settings, actor=ACTOR)
    assert not report.keys_encrypted
    pem = service.keystore_for(settings).current_path(KeyRole.ROOT).read_bytes()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")


def test_commands_before_init_say_to_run_it(settings: Settings) -> None:
    with pytest.raises(ConfigurationError, match="vigil-portal init"):
        service.open_repository(settings)


def test_rotating_the_license_key_keeps_old_licenses_verifying(
    session: Session, initialised: Settings, make_license: Callable[..., License]
) -> None:
    old_key = service.license_signing_key(initialised).key
    old_license = make_license()
    old_token = sign_license(old_license, signing_key=old_key, issuer=initialised.portal_url)

    rotation = service.rotate_key(session, initialised, KeyRole.LICENSE, actor=ACTOR)

    new_key = service.license_signing_key(initialised).key
    assert rotation.new_key_id == key_id(new_key) != key_id(old_key)
    published = service.open_repository(initialised, signing=False).license_keys().keys
    assert set(published) == {key_id(old_key), key_id(new_key)}
    assert verify_license(old_token, published).claims.jti == str(old_license.id)
    assert make_license().key_id == key_id(new_key)
    event = list_events(session, tag=EventTag.KEY_ROTATED)[0]
    assert event.payload["old_key_id"] == key_id(old_key)


@pytest.mark.parametrize("role", TUF_ROLES)
def test_rotating_a_tuf_key_keeps_installed_engines_updating(
    session: Session,
    initialised: Settings,
    make_model_dir: Callable[..., Path],
    tmp_path: Path,
    role: KeyRole,
) -> None:
    repository = service.open_repository(initialised)
    first_root = repository.root_bytes()
    bundle_service.publish_bundle(
        session, repository, make_model_dir(), version="1.0", channel=Channel.STABLE, actor=ACTOR
    )

    rotation = service.rotate_key(session, initialised, role, actor=ACTOR)

    assert rotation.root_version == 2
    rotated = service.open_repository(initialised)
    assert rotation.new_key_id in rotated.trusted_root().signed.roles[role.value].keyids
    assert rotation.old_key_id not in rotated.trusted_root().signed.roles[role.value].keyids
    out = tmp_path / "export.tar"
    bundle_service.export_bundle(session, rotated, "1.0", out, actor=ACTOR)
    verified = verify_exported_bundle(out, first_root, tmp_path / "engine")
    assert verified.root_version == 2


def test_a_failed_rotation_leaves_the_current_key_in_place(
    session: Session, initialised: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _key_files(initialised)

    def broken(*_args: object, **_kwargs: object) -> str:
        raise OSError("disk full")

    monkeypatch.setattr(Repository, "rotate_key", broken)
    with pytest.raises(OSError, match="disk full"):
        service.rotate_key(session, initialised, KeyRole.TARGETS, actor=ACTOR)
    assert _key_files(initialised) == before


def test_repo_root_writes_the_current_root(initialised: Settings, tmp_path: Path) -> None:
    out = tmp_path / "root.json"
    assert service.write_root(initialised, out) == 1
    assert out.read_bytes() == service.open_repository(initialised, signing=False).root_bytes(1)


def test_refresh_resigns_the_timestamp(initialised: Settings) -> None:
    before = service.open_repository(initialised, signing=False).versions().timestamp
    assert service.refresh_timestamp(initialised) == ["timestamp"]
    assert service.open_repository(initialised, signing=False).versions().timestamp == before + 1
