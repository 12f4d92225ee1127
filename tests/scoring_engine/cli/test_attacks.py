"""One test per attack on the licensed engine, as the adopter running the CLI sees it.

Each asserts the exit code of SPEC §6 (3 license, 4 bundle or update verification) and
the one clear line on stderr. Times are moved through ``scoring_engine.trust.clock``
(the engine's single clock reading) rather than by sleeping.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from licensing.keys import generate_private_key, key_id
from licensing.tokens import issue_license
from scoring_engine import trust
from tests.scoring_engine.licensed import (
    FakePortal,
    assert_fails,
    assert_ok,
    hs256_with_public_key,
    signed_by_foreign_key_claiming_real_kid,
    tar_members,
    tar_with,
    with_alg_none,
    with_altered_claims,
)


def _token(portal, **overrides):
    return issue_license(portal.claims(**overrides), portal.license_key)


def _set_clock(monkeypatch, moment):
    monkeypatch.setattr(trust, "clock", lambda: moment)


def _status(engine):
    return json.loads(assert_ok(engine("status", "--json")).stdout)


#### Forged license tokens ####


def _altered_claims(portal):
    return with_altered_claims(_token(portal), channels=["stable", "beta"], max_engines=1000)


def _foreign_key_with_real_kid(portal):
    return signed_by_foreign_key_claiming_real_kid(_token(portal), key_id(portal.license_key))


def _foreign_key(portal):
    return issue_license(portal.claims(), generate_private_key())


def _alg_none(portal):
    return with_alg_none(_token(portal), key_id(portal.license_key))


def _hs256_with_public_key(portal):
    return hs256_with_public_key(_token(portal), portal.license_key)


FORGERIES = [
    pytest.param(_altered_claims, "license signature is invalid", id="altered-claims"),
    pytest.param(_foreign_key_with_real_kid, "license signature is invalid", id="foreign-key"),
    pytest.param(_foreign_key, "license is signed by an unknown key", id="foreign-kid"),
    pytest.param(_alg_none, "license algorithm 'none' is not accepted", id="alg-none"),
    pytest.param(_hs256_with_public_key, "algorithm 'HS256' is not accepted", id="hs256-pubkey"),
]


@pytest.mark.parametrize(("forge", "message"), FORGERIES)
def test_forged_license_is_refused_by_init(installed, portal, forge, message):
    forged = portal.write_token(forge(portal), "forged.jwt")
    assert_fails(installed("init", "--root", portal.root_file(), "--license", forged), 3, message)
    # The genuine license stays in place.
    assert _status(installed)["license"]["status"] == "valid"


@pytest.mark.parametrize(("forge", "message"), FORGERIES)
def test_forged_license_placed_in_the_home_stops_scoring(
    installed, portal, conversations_file, forge, message
):
    (installed.home / "trust" / "license.jwt").write_text(forge(portal))
    assert_fails(installed("score", conversations_file), 3, message)
    assert _status(installed)["license"]["status"] == "invalid"


@pytest.mark.parametrize(
    ("forge", "message"),
    [FORGERIES[0], FORGERIES[1], FORGERIES[2]],
)
def test_forged_signature_is_caught_at_the_first_install(engine, portal, forge, message):
    forged = portal.write_token(forge(portal), "forged.jwt")
    init = assert_ok(engine("init", "--root", portal.root_file(), "--license", forged))
    assert "signature will be verified when the first bundle is installed" in init.stdout
    assert_fails(engine("install", portal.export("2026.11.0")), 3, message)
    assert _status(engine)["bundle"] is None


@pytest.mark.parametrize(("forge", "message"), [FORGERIES[3], FORGERIES[4]])
def test_unsigned_or_hmac_license_is_refused_by_init_even_before_keys_arrive(
    engine, portal, forge, message
):
    forged = portal.write_token(forge(portal), "forged.jwt")
    assert_fails(engine("init", "--root", portal.root_file(), "--license", forged), 3, message)
    assert_fails(engine("status"), 3, "is not initialised")


#### Time ####


def test_license_expired_beyond_grace_stops_scoring(installed, monkeypatch, conversations_file):
    expires = datetime.fromisoformat(_status(installed)["license"]["expires"])
    _set_clock(monkeypatch, expires + timedelta(days=15))
    assert_fails(installed("score", conversations_file), 3, "its grace period ended")
    assert _status(installed)["license"]["status"] == "expired"


def test_license_in_grace_scores_with_a_loud_warning_on_every_run(
    installed, monkeypatch, conversations_file
):
    expires = datetime.fromisoformat(_status(installed)["license"]["expires"])
    _set_clock(monkeypatch, expires + timedelta(days=3))
    for _ in range(2):
        score = assert_ok(installed("score", conversations_file))
        assert len(score.stdout.splitlines()) == 6
        assert "warning: LICENSE lic-0001 EXPIRED" in score.stderr
        assert "(11 days left)" in score.stderr
    status = assert_ok(installed("status"))
    assert "IN GRACE" in status.stdout
    assert "LICENSE EXPIRED" in status.stderr


def test_expired_license_installs_no_new_bundle(engine, portal, monkeypatch):
    now = datetime.now(UTC)
    license_file = portal.issue(exp=now + timedelta(hours=1))
    assert_ok(engine("init", "--root", portal.root_file(), "--license", license_file))
    _set_clock(monkeypatch, now + timedelta(hours=2))
    assert_fails(
        engine("install", portal.export("2026.11.0")), 3, "no new bundle is installed after expiry"
    )


def test_license_expired_beyond_grace_is_refused_by_init(engine, portal):
    now = datetime.now(UTC)
    old = portal.issue(
        iat=now - timedelta(days=60), nbf=now - timedelta(days=60), exp=now - timedelta(days=20)
    )
    assert_fails(
        engine("init", "--root", portal.root_file(), "--license", old), 3, "grace period ended"
    )


def test_not_yet_valid_license_is_refused(engine, portal):
    later = datetime.now(UTC) + timedelta(days=2)
    early = portal.issue(iat=later, nbf=later)
    assert_fails(
        engine("init", "--root", portal.root_file(), "--license", early), 3, "not valid before"
    )


def test_clock_set_back_stops_scoring(installed, monkeypatch, conversations_file):
    assert_ok(installed("score", conversations_file))
    _set_clock(monkeypatch, datetime.now(UTC) - timedelta(days=2))
    assert_fails(installed("score", conversations_file), 3, "the clock was set back")
    assert _status(installed)["license"]["status"] == "clock_set_back"


#### Revocation ####


def test_revoked_license_stops_scoring(installed, portal, conversations_file):
    portal.revoke("lic-0001")
    assert_fails(
        installed("install", portal.export("2026.11.0", "with-revocation.vigil")),
        3,
        "license lic-0001 has been revoked",
    )
    assert_fails(installed("score", conversations_file), 3, "license lic-0001 has been revoked")
    status = _status(installed)
    assert status["license"]["status"] == "revoked"


#### Tampering after install ####


def test_model_file_modified_after_install_is_refused(installed, conversations_file):
    model = installed.home / "bundles" / "2026.11.0" / "model.skops"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    assert_fails(
        installed("score", conversations_file),
        4,
        "installed bundle reference-2026.11.0: model.skops was modified after install",
    )
    assert "model.skops was modified" in _status(installed)["bundle"]["integrity"]


def test_manifest_modified_after_install_is_refused(installed, conversations_file):
    manifest_file = installed.home / "bundles" / "2026.11.0" / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    manifest["recommended_threshold"] = 0.99
    manifest_file.write_text(json.dumps(manifest))
    assert_fails(
        installed("score", conversations_file),
        4,
        "installed bundle reference-2026.11.0: manifest.json was modified after install",
    )


def test_model_file_replaced_by_a_link_is_refused(installed, conversations_file, tmp_path):
    model = installed.home / "bundles" / "2026.11.0" / "model.skops"
    elsewhere = tmp_path / "elsewhere.skops"
    elsewhere.write_bytes(model.read_bytes())
    model.unlink()
    model.symlink_to(elsewhere)
    assert_fails(installed("score", conversations_file), 4, "model.skops is missing")


#### Bundles that must not install ####


def test_bundle_from_another_portal_is_refused(installed, tmp_path, engine_model_dir):
    other = FakePortal.create(tmp_path / "other-portal", engine_model_dir)
    other.publish("2027.1.0")
    assert_fails(
        installed("install", other.export("2027.1.0")), 4, "not signed by this engine's portal"
    )
    assert _status(installed)["bundle"]["version"] == "2026.11.0"


def test_rollback_to_an_older_version_is_refused(engine, portal):
    portal.publish("2026.12.0")
    assert_ok(engine("init", "--root", portal.root_file(), "--license", portal.issue()))
    assert_ok(engine("install", portal.export("2026.12.0")))
    # A freshly signed export of the older bundle: the metadata is current, the bundle old.
    assert_fails(
        engine("install", portal.export("2026.11.0")),
        4,
        "bundle version 2026.11.0 is older than installed version 2026.12.0",
    )
    assert _status(engine)["bundle"]["version"] == "2026.12.0"


def test_replayed_old_export_is_refused(installed, portal):
    old_export = portal.export("2026.11.0", "old.vigil")
    portal.publish("2026.12.0")
    assert_ok(installed("install", portal.export("2026.12.0")))
    assert_fails(installed("install", old_export), 4, "a replayed export")


def test_expired_export_is_refused(engine, portal, monkeypatch):
    assert_ok(engine("init", "--root", portal.root_file(), "--license", portal.issue()))
    export = portal.export("2026.11.0")
    _set_clock(monkeypatch, datetime.now(UTC) + timedelta(days=2))
    assert_fails(engine("install", export), 4, "update metadata expired")
    assert_fails(engine("install", export), 4, "ask the portal operator for a fresh export")


def test_bundle_needing_a_newer_engine_is_refused(installed, portal):
    portal.publish("2026.12.0", engine_version=">=9.0")
    assert_fails(
        installed("install", portal.export("2026.12.0")),
        4,
        "bundle reference-2026.12.0 needs engine >=9.0; this engine is 0.1.0",
    )
    assert _status(installed)["bundle"]["version"] == "2026.11.0"


@pytest.mark.parametrize(
    "name", ["../escaped.txt", "targets/../../escaped.txt", "/var/vigil-escaped.txt"]
)
def test_export_with_a_member_escaping_its_folder_is_refused(engine, portal, tmp_path, name):
    assert_ok(engine("init", "--root", portal.root_file(), "--license", portal.issue()))
    members = tar_members(portal.export("2026.11.0"))
    crafted = tmp_path / "crafted.vigil"
    crafted.write_bytes(tar_with({**members, name: b"owned"}))
    assert_fails(engine("install", crafted), 4, f"archive member name {name!r} is unsafe")
    assert not list(tmp_path.rglob("escaped.txt"))
    assert _status(engine)["bundle"] is None


def test_export_with_a_link_is_refused(engine, portal, tmp_path):
    assert_ok(engine("init", "--root", portal.root_file(), "--license", portal.issue()))
    members = tar_members(portal.export("2026.11.0"))
    crafted = tmp_path / "crafted.vigil"
    crafted.write_bytes(tar_with(members, symlinks={"metadata/evil.json": "/etc/passwd"}))
    assert_fails(engine("install", crafted), 4, "is a link")


def test_signed_bundle_with_a_member_escaping_its_folder_is_refused(
    engine, portal, tmp_path, engine_model_dir
):
    good = tar_members(portal.workdir / "built" / "reference-2026.11.0.tar")
    card = good.pop("MODEL_CARD.md")
    evil = tar_with({**good, "../../escaped.txt": card})
    portal.publish_raw_bundle("2026.12.0", evil)
    assert_ok(engine("init", "--root", portal.root_file(), "--license", portal.issue()))
    assert_fails(
        engine("install", portal.export("2026.12.0")),
        4,
        "archive member name '../../escaped.txt' is unsafe",
    )
    assert not list(tmp_path.rglob("escaped.txt"))


def test_oversized_export_is_refused_before_it_is_read(engine, portal, tmp_path):
    assert_ok(engine("init", "--root", portal.root_file(), "--license", portal.issue()))
    huge = tmp_path / "huge.vigil"
    with huge.open("wb") as handle:  # sparse: no disk space or time spent
        handle.truncate(trust.LIMITS.max_export_bytes + 1)
    assert_fails(engine("install", huge), 4, "export is larger than")


def test_signed_bundle_listed_larger_than_the_limit_is_refused(
    engine, portal, tmp_path, monkeypatch
):
    assert_ok(engine("init", "--root", portal.root_file(), "--license", portal.issue()))
    export = portal.export("2026.11.0")
    small_limits = type(trust.LIMITS)(max_bundle_bytes=10_000, max_member_bytes=10_000)
    monkeypatch.setattr("scoring_engine.installed.LIMITS", small_limits)
    assert_fails(engine("install", export), 4, "larger than 10000 bytes")


def test_bundle_of_an_unlicensed_channel_does_not_score(installed, portal, conversations_file):
    # A license narrowed to beta after a stable bundle was installed.
    narrowed = portal.issue("beta.jwt", channels=("beta",))
    init = assert_ok(installed("init", "--root", portal.root_file(), "--license", narrowed))
    assert "does not entitle channel 'stable'" in init.stderr
    assert_fails(installed("score", conversations_file), 3, "does not entitle channel 'stable'")
