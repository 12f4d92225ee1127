"""Exported bundles for air-gapped installs, verified like online updates.

The portal here is signed at a fixed time and verification uses fixed
reference times, so these tests do not depend on the wall clock.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from licensing.exceptions import (
    BundleVerificationError,
    ExpiredMetadataError,
    LicenseRevokedError,
    RepositoryError,
    UnsafeBundleError,
)
from licensing.export import export_bundle, verify_exported_bundle
from licensing.keys import generate_private_key, key_id
from licensing.tokens import issue_license, verify_license

from .tarfiles import members_of, regular, rewrite, tar_bytes


@pytest.fixture
def portal(make_portal, now):
    return make_portal(clock=lambda: now)


@pytest.fixture
def exported(portal, make_bundle, tmp_path):
    target = portal.repo.add_bundle(make_bundle(), channel="stable")
    portal.repo.publish()
    out = tmp_path / "reference-2026.11.0.vigil"
    export_bundle(portal.repo, target, out)
    return out


def test_export_verifies_against_the_trusted_root(portal, exported, tmp_path, now):
    verified = verify_exported_bundle(
        exported,
        portal.repo.root_bytes(1),
        tmp_path / "work",
        reference_time=now + timedelta(hours=1),
    )
    assert verified.target_path == "bundles/stable/reference-2026.11.0.tar"
    assert verified.custom["version"] == "2026.11.0"
    assert verified.bundle.manifest.label == "reference-2026.11.0"
    assert verified.bundle.model_path.read_bytes().startswith(b"PK")
    assert key_id(portal.license_key) in verified.license_keys.keys
    assert verified.root_version == 1


def test_export_is_reproducible(portal, exported, tmp_path):
    again = tmp_path / "again.vigil"
    export_bundle(portal.repo, "bundles/stable/reference-2026.11.0.tar", again)
    assert again.read_bytes() == exported.read_bytes()


def test_revocation_list_is_delivered_through_an_export(
    portal, make_bundle, make_claims, tmp_path, now
):
    token = issue_license(make_claims(jti="lic-0042"), portal.license_key)
    portal.repo.revoke_license("lic-0042", "organisation closed", revoked_at=now)
    target = portal.repo.add_bundle(make_bundle(), channel="stable")
    portal.repo.publish()
    export_file = tmp_path / "export.vigil"
    export_bundle(portal.repo, target, export_file)

    verified = verify_exported_bundle(
        export_file, portal.repo.root_bytes(1), tmp_path / "work", reference_time=now
    )
    assert verified.revocations.revoked_ids == {"lic-0042"}
    assert verified.revocations.revocations[0].reason == "organisation closed"

    with pytest.raises(LicenseRevokedError):
        verify_license(
            token,
            verified.license_keys.keys,
            reference_time=now,
            revoked=verified.revocations.revoked_ids,
        )


def test_bundle_from_another_portal(make_portal, exported, tmp_path, now):
    other_portal = make_portal(clock=lambda: now)
    with pytest.raises(RepositoryError):
        verify_exported_bundle(
            exported, other_portal.repo.root_bytes(), tmp_path / "work", reference_time=now
        )


@pytest.mark.parametrize("member", ["model.skops", "manifest.json", "MODEL_CARD.md"])
def test_tampered_bundle_inside_export(exported, portal, tmp_path, now, member):
    members = members_of(exported)
    name = next(n for n in members if n.startswith("targets/bundles/"))
    bundle = members_of(members[name])
    bundle[member] = bundle[member].replace(b"0.8", b"0.1") + b" "
    tampered = tmp_path / "tampered.vigil"
    rewrite(exported, tampered, {name: tar_bytes([regular(n, d) for n, d in bundle.items()])})
    with pytest.raises(BundleVerificationError):
        verify_exported_bundle(
            tampered, portal.repo.root_bytes(1), tmp_path / "work", reference_time=now
        )
    assert not (tmp_path / "work" / "bundle").exists()


def test_tampered_targets_metadata_inside_export(exported, portal, tmp_path, now):
    members = members_of(exported)
    name = next(n for n in members if n.endswith(".targets.json"))
    tampered = tmp_path / "tampered.vigil"
    rewrite(exported, tampered, {name: members[name].replace(b"2026.11.0", b"2026.99.0")})
    with pytest.raises(RepositoryError):
        verify_exported_bundle(
            tampered, portal.repo.root_bytes(1), tmp_path / "work", reference_time=now
        )


def test_export_whose_metadata_has_expired(exported, portal, tmp_path, now):
    with pytest.raises(ExpiredMetadataError):
        verify_exported_bundle(
            exported,
            portal.repo.root_bytes(1),
            tmp_path / "work",
            reference_time=now + timedelta(days=2),
        )


def test_export_after_root_rotation_verifies_with_the_first_root(
    portal, make_bundle, tmp_path, now
):
    first_root = portal.repo.root_bytes(1)
    portal.repo.rotate_key("root", generate_private_key())
    portal.repo.rotate_key("timestamp", generate_private_key())
    target = portal.repo.add_bundle(make_bundle(), channel="stable")
    portal.repo.publish()
    export_file = tmp_path / "export.vigil"
    export_bundle(portal.repo, target, export_file)
    verified = verify_exported_bundle(
        export_file, first_root, tmp_path / "work", reference_time=now
    )
    assert verified.root_version == 3
    assert verified.root_bytes == portal.repo.root_bytes(3)


def test_older_export_cannot_roll_back_the_metadata_cache(portal, make_bundle, tmp_path, now):
    cache = tmp_path / "engine-tuf-cache"
    old_target = portal.repo.add_bundle(make_bundle("2026.11.0"), channel="stable")
    portal.repo.publish()
    old_export = tmp_path / "old.vigil"
    export_bundle(portal.repo, old_target, old_export)
    new_target = portal.repo.add_bundle(make_bundle("2026.12.0"), channel="stable")
    portal.repo.publish()
    new_export = tmp_path / "new.vigil"
    export_bundle(portal.repo, new_target, new_export)

    root = portal.repo.root_bytes(1)
    verify_exported_bundle(
        new_export, root, tmp_path / "w1", reference_time=now, metadata_cache_dir=cache
    )
    with pytest.raises(RepositoryError):
        verify_exported_bundle(
            old_export, root, tmp_path / "w2", reference_time=now, metadata_cache_dir=cache
        )


def test_export_with_unexpected_member_is_unsafe(exported, portal, tmp_path, now):
    tampered = tmp_path / "tampered.vigil"
    rewrite(exported, tampered, {"run.sh": b"rm -rf /"})
    with pytest.raises(UnsafeBundleError, match="unexpected"):
        verify_exported_bundle(
            tampered, portal.repo.root_bytes(1), tmp_path / "work", reference_time=now
        )


def test_export_index_pointing_at_a_non_bundle_is_refused(exported, portal, tmp_path, now):
    tampered = tmp_path / "tampered.vigil"
    rewrite(
        exported,
        tampered,
        {"export.json": b'{"bundle":"licensing/keys.json","format":"vigil-bundle-export/1"}'},
    )
    with pytest.raises(UnsafeBundleError, match="bundle"):
        verify_exported_bundle(
            tampered, portal.repo.root_bytes(1), tmp_path / "work", reference_time=now
        )


def test_exporting_an_unpublished_target_is_refused(portal, tmp_path):
    with pytest.raises(RepositoryError, match="not a published bundle"):
        export_bundle(portal.repo, "bundles/stable/nothing-1.0.tar", tmp_path / "x.vigil")
