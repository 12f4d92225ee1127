"""The TUF repository, checked with the stock python-tuf Updater.

These tests sign metadata at the real current time because the stock Updater
reads the wall clock itself; nothing sleeps.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tuf.api import exceptions as tuf_exceptions
from tuf.api.metadata import Metadata

from licensing.exceptions import RepositoryError, SigningKeyError
from licensing.keys import generate_private_key, tuf_public_key
from licensing.repository import Repository, RepositoryExpiries
from licensing.targets import (
    LICENSE_KEYS_TARGET,
    REVOCATIONS_TARGET,
    LicenseKeySet,
    RevocationList,
)


def test_create_writes_consistent_snapshot_layout(make_portal):
    portal = make_portal()
    names = sorted(p.name for p in portal.repo.metadata_dir.iterdir())
    assert names == [
        "1.root.json",
        "1.snapshot.json",
        "1.targets.json",
        "2.snapshot.json",
        "2.targets.json",
        "timestamp.json",
    ]
    root = Metadata.from_bytes(portal.repo.root_bytes()).signed
    assert root.consistent_snapshot is True
    assert portal.repo.versions().timestamp == 2


def test_repository_create_publish_update_with_stock_updater(
    make_portal, make_updater, make_bundle, tmp_path
):
    portal = make_portal()
    repo = portal.repo
    bootstrap = repo.root_bytes()

    target = repo.add_bundle(make_bundle("2026.11.0"), channel="stable")
    repo.publish()

    updater = make_updater(repo, tmp_path / "client", bootstrap)
    info = updater.get_targetinfo(target)
    assert info is not None
    assert info.custom == {
        "kind": "bundle",
        "channel": "stable",
        "name": "reference",
        "version": "2026.11.0",
    }
    downloaded = updater.download_target(info)
    assert Path(downloaded).read_bytes() == make_bundle("2026.11.0").read_bytes()

    keys_info = updater.get_targetinfo(LICENSE_KEYS_TARGET)
    keys = LicenseKeySet.from_bytes(Path(updater.download_target(keys_info)).read_bytes())
    assert next(iter(keys.keys.values())) == portal.license_key.public_key()

    # A second update by the same client sees the newer bundle.
    newer = repo.add_bundle(make_bundle("2026.12.0"), channel="stable")
    repo.publish()
    second = make_updater(repo, tmp_path / "client", bootstrap)
    assert second.get_targetinfo(newer) is not None


def test_target_paths_are_hash_prefixed(make_portal, make_bundle):
    repo = make_portal().repo
    target = repo.add_bundle(make_bundle(), channel="stable")
    repo.publish()
    stored = repo.target_file_path(target)
    info = repo.published_targets()[target]
    assert stored.name == f"{info.hashes['sha256']}.reference-2026.11.0.tar"
    assert stored.parent == repo.targets_dir / "bundles" / "stable"


def test_staged_changes_are_invisible_until_published(make_portal, make_bundle):
    repo = make_portal().repo
    target = repo.add_bundle(make_bundle(), channel="stable")
    assert target not in repo.published_targets()
    repo.publish()
    assert target in repo.published_targets()


def test_repository_reopens_from_disk(make_portal, make_bundle):
    portal = make_portal()
    target = portal.repo.add_bundle(make_bundle(), channel="stable")
    portal.repo.publish()
    reopened = Repository(portal.repo.directory, portal.all_keys)
    assert reopened.versions() == portal.repo.versions()
    assert target in reopened.published_targets()
    assert reopened.license_keys().keys.keys() == portal.repo.license_keys().keys.keys()


def test_reopening_detects_tampered_metadata(make_portal):
    portal = make_portal()
    path = portal.repo.metadata_file("targets")
    document = json.loads(path.read_bytes())
    document["signed"]["expires"] = "2099-01-01T00:00:00Z"
    path.write_text(json.dumps(document))
    with pytest.raises(RepositoryError):
        Repository(portal.repo.directory, portal.all_keys)


def test_create_refuses_an_existing_repository(make_portal):
    portal = make_portal()
    with pytest.raises(RepositoryError, match="already"):
        Repository.create(portal.repo.directory, portal.role_keys)


def test_signing_without_the_role_key_fails_and_changes_nothing(make_portal, tmp_path):
    portal = make_portal()
    without_targets_key = [k for k in portal.all_keys if k not in portal.role_keys["targets"]]
    repo = Repository(portal.repo.directory, without_targets_key)
    before = repo.versions()
    repo.revoke_license("lic-1", "test")
    with pytest.raises(SigningKeyError, match="targets"):
        repo.publish()
    assert repo.versions() == before


def test_refresh_timestamp_resigns_only_what_expires(make_portal, make_updater, tmp_path):
    start = datetime.now(UTC)
    clock_now = [start]
    portal = make_portal(clock=lambda: clock_now[0])
    repo = portal.repo
    before = repo.versions()

    assert repo.refresh_timestamp() == ["timestamp"]
    assert repo.versions().timestamp == before.timestamp + 1
    assert repo.versions().snapshot == before.snapshot

    clock_now[0] = start + timedelta(days=6, hours=12)
    assert repo.refresh_timestamp() == ["snapshot", "timestamp"]

    clock_now[0] = start + timedelta(days=89, hours=12)
    assert repo.refresh_timestamp() == ["targets", "snapshot", "timestamp"]


def test_refreshed_timestamp_keeps_clients_updating(make_portal, make_updater, tmp_path):
    portal = make_portal(
        clock=lambda: datetime.now(UTC) - timedelta(hours=23),
        expiries=RepositoryExpiries(timestamp=timedelta(days=1)),
    )
    bootstrap = portal.repo.root_bytes()
    make_updater(portal.repo, tmp_path / "client", bootstrap).refresh()
    fresh = Repository(portal.repo.directory, portal.all_keys)
    fresh.refresh_timestamp()
    make_updater(fresh, tmp_path / "client", bootstrap).refresh()


def test_expired_timestamp_stops_the_stock_updater(make_portal, make_updater, tmp_path):
    portal = make_portal(clock=lambda: datetime.now(UTC) - timedelta(days=2))
    updater = make_updater(portal.repo, tmp_path / "client", portal.repo.root_bytes())
    with pytest.raises(tuf_exceptions.ExpiredMetadataError):
        updater.refresh()


@pytest.mark.parametrize("role", ["root", "targets", "snapshot", "timestamp"])
def test_key_rotation_keeps_existing_client_updating(
    make_portal, make_updater, make_bundle, tmp_path, role
):
    portal = make_portal()
    repo = portal.repo
    bootstrap = repo.root_bytes()
    client_dir = tmp_path / "client"
    make_updater(repo, client_dir, bootstrap).refresh()

    new_key = generate_private_key()
    repo.rotate_key(role, new_key)
    root = repo.trusted_root().signed
    assert root.version == 2
    assert root.roles[role].keyids == [tuf_public_key(new_key).keyid]

    # The old key is gone from the role; later changes are signed with the new one.
    target = repo.add_bundle(make_bundle(), channel="stable")
    repo.publish()
    updater = make_updater(repo, client_dir, bootstrap)
    assert updater.get_targetinfo(target) is not None

    # A brand-new client holding only the first root also follows the chain.
    assert make_updater(repo, tmp_path / "fresh", bootstrap).get_targetinfo(target) is not None


def test_root_rotation_without_old_root_key_is_refused(make_portal):
    portal = make_portal()
    others = [k for k in portal.all_keys if k not in portal.role_keys["root"]]
    repo = Repository(portal.repo.directory, others)
    with pytest.raises(SigningKeyError, match="root"):
        repo.rotate_key("root", generate_private_key())
    assert repo.versions().root == 1


def test_root_threshold_rotation_of_one_of_two_keys(make_portal, make_updater, tmp_path):
    portal = make_portal(root_keys=2, root_threshold=2)
    repo = portal.repo
    bootstrap = repo.root_bytes()
    assert len(Metadata.from_bytes(bootstrap).signatures) == 2
    old = tuf_public_key(portal.role_keys["root"][0]).keyid
    repo.rotate_key("root", generate_private_key(), old_keyid=old)
    updater = make_updater(repo, tmp_path / "client", bootstrap)
    updater.refresh()
    assert repo.trusted_root().signed.roles["root"].threshold == 2


def test_rotating_a_multi_key_role_needs_the_old_key_named(make_portal):
    portal = make_portal(root_keys=2)
    with pytest.raises(ValueError, match="name the one"):
        portal.repo.rotate_key("root", generate_private_key())


def test_root_chain_is_walked_through_several_rotations(make_portal, make_updater, tmp_path):
    portal = make_portal()
    bootstrap = portal.repo.root_bytes()
    for _ in range(3):
        portal.repo.rotate_key("root", generate_private_key())
    portal.repo.resign_root()
    updater = make_updater(portal.repo, tmp_path / "client", bootstrap)
    updater.refresh()
    assert (tmp_path / "client" / "root_history" / "5.root.json").exists()


def test_revocation_list_versions_only_grow(make_portal, now):
    repo = make_portal().repo
    assert repo.revocations() == RevocationList()
    first = repo.revoke_license("lic-1", "chargeback", revoked_at=now)
    assert first.version == 1
    assert repo.revoke_license("lic-1", "again", revoked_at=now) == first
    second = repo.revoke_license("lic-2", "abuse", revoked_at=now)
    assert second.version == 2
    assert second.revoked_ids == {"lic-1", "lic-2"}
    repo.publish()
    assert REVOCATIONS_TARGET in repo.published_targets()
    with pytest.raises(RepositoryError, match="older"):
        first.check_not_older_than(second)


def test_promote_moves_a_bundle_to_another_channel(make_portal, make_bundle):
    repo = make_portal().repo
    beta = repo.add_bundle(make_bundle(), channel="beta")
    repo.publish()
    stable = repo.promote_bundle(beta, channel="stable")
    repo.publish()
    assert stable == "bundles/stable/reference-2026.11.0.tar"
    assert repo.published_targets()[stable].hashes == repo.published_targets()[beta].hashes
    index = repo.channel_index("stable")
    assert index is not None
    assert index.target == stable


def test_unsafe_target_paths_are_refused(make_portal, tmp_path):
    source = tmp_path / "f"
    source.write_bytes(b"x")
    for bad in ("/abs", "../up", "a//b", "a/./b", ""):
        with pytest.raises(ValueError, match="target path"):
            make_portal().repo.add_target(bad, source)


def test_two_publishers_never_reuse_a_version(make_portal, make_bundle, make_updater, tmp_path):
    portal = make_portal()
    server = portal.repo
    scheduler = Repository(server.directory, portal.all_keys)
    server.add_bundle(make_bundle(), channel="stable")
    server.publish()
    scheduler.refresh_timestamp()  # works from the state on disk, not its stale copy
    assert scheduler.versions().timestamp == server.versions().timestamp + 1
    updater = make_updater(server, tmp_path / "client", server.root_bytes())
    assert updater.get_targetinfo("bundles/stable/reference-2026.11.0.tar") is not None


def test_concurrent_revocations_are_not_silently_lost(make_portal, now):
    portal = make_portal()
    first = portal.repo
    second = Repository(first.directory, portal.all_keys)
    first.revoke_license("lic-1", "abuse", revoked_at=now)
    second.revoke_license("lic-2", "abuse", revoked_at=now)
    first.publish()
    with pytest.raises(RepositoryError, match="stage the change again"):
        second.publish()
    second.revoke_license("lic-2", "abuse", revoked_at=now)
    second.publish()
    assert second.revocations().revoked_ids == {"lic-1", "lic-2"}
    assert second.revocations().version == 2


@pytest.mark.parametrize("role", ["targets", "snapshot", "timestamp"])
def test_interrupted_rotation_is_repaired_by_the_scheduler(
    make_portal, make_updater, tmp_path, monkeypatch, role
):
    portal = make_portal()
    bootstrap = portal.repo.root_bytes()
    new_key = generate_private_key()

    def crash(*_args, **_kwargs):
        raise OSError("power cut")

    monkeypatch.setattr(Repository, f"_write_{role}", crash)
    with pytest.raises(OSError, match="power cut"):
        portal.repo.rotate_key(role, new_key)
    monkeypatch.undo()

    reopened = Repository(portal.repo.directory, [*portal.all_keys, new_key])
    assert reopened.versions().root == 2
    assert role in reopened.refresh_timestamp()
    make_updater(reopened, tmp_path / "client", bootstrap).refresh()
