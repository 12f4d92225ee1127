"""``vigil-engine init``, ``install`` and ``status`` as an adopting organisation uses them."""

from __future__ import annotations

import json

import pytest

from tests.scoring_engine.licensed import FakePortal, assert_fails, assert_ok


def _status(engine):
    return json.loads(assert_ok(engine("status", "--json")).stdout)


def test_init_install_then_score_works(engine, portal, conversations_file):
    init = assert_ok(engine("init", "--root", portal.root_file(), "--license", portal.issue()))
    assert "License lic-0001 for Example Chat Ltd (org-42)" in init.stdout
    assert "signature will be verified when the first bundle is installed" in init.stdout
    assert "Next: vigil-engine install BUNDLE_FILE" in init.stdout

    install = assert_ok(engine("install", portal.export("2026.11.0")))
    assert "Installed reference-2026.11.0 (channel stable)" in install.stdout
    assert "verified against trust root version 1" in install.stdout
    assert "Previous bundle: none." in install.stdout
    assert "License lic-0001 for Example Chat Ltd verified" in install.stdout

    score = assert_ok(engine("score", conversations_file))
    lines = [json.loads(line) for line in score.stdout.splitlines()]
    assert len(lines) == 6
    assert {line["bundle"] for line in lines} == {"reference-2026.11.0"}
    assert all(0.0 <= line["score"] <= 1.0 for line in lines)
    assert "6 conversations read, 6 scored" in score.stderr
    assert "warning" not in score.stderr


def test_evaluate_runs_on_the_installed_bundle(installed, conversations_file):
    report = json.loads(assert_ok(installed("evaluate", conversations_file, "--json")).stdout)
    assert report["bundle"] == "reference-2026.11.0"
    assert report["summary"]["scored"] == 6


def test_score_with_nothing_installed_exits_4(engine, portal, conversations_file):
    assert_ok(engine("init", "--root", portal.root_file(), "--license", portal.issue()))
    assert_fails(engine("score", conversations_file), 4, "no bundle installed")


def test_score_in_an_uninitialised_home_says_to_run_init(engine, conversations_file):
    assert_fails(engine("score", conversations_file), 3, "run `vigil-engine init")


def test_a_newer_bundle_replaces_the_current_one_and_keeps_the_previous(installed, portal):
    portal.publish("2026.12.0")
    install = assert_ok(installed("install", portal.export("2026.12.0")))
    assert "Previous bundle: reference-2026.11.0." in install.stdout
    bundle = _status(installed)["bundle"]
    assert (bundle["version"], bundle["previous_version"]) == ("2026.12.0", "2026.11.0")

    portal.publish("2027.1.0")
    assert_ok(installed("install", portal.export("2027.1.0")))
    kept = {path.name for path in (installed.home / "bundles").iterdir() if path.is_dir()}
    assert kept == {"2026.12.0", "2027.1.0"}
    history = json.loads((installed.home / "bundles" / "history.json").read_text())
    assert [entry["version"] for entry in history] == ["2026.11.0", "2026.12.0", "2027.1.0"]


def test_reinstalling_the_bundle_repairs_a_modified_install(installed, portal, conversations_file):
    model = installed.home / "bundles" / "2026.11.0" / "model.skops"
    model.write_bytes(model.read_bytes() + b"\0")
    assert_fails(installed("score", conversations_file), 4, "model.skops was modified")

    assert_ok(installed("install", portal.export("2026.11.0")))
    assert_ok(installed("score", conversations_file))


def test_install_records_what_was_verified(installed):
    record = json.loads((installed.home / "bundles" / "current.json").read_text())
    assert record["label"] == "reference-2026.11.0"
    assert record["target"]["path"] == "bundles/stable/reference-2026.11.0.tar"
    assert len(record["target"]["hashes"]["sha256"]) == 64
    assert set(record["files"]) == {"manifest.json", "model.skops", "MODEL_CARD.md"}
    assert (installed.home / "trust" / "license-keys.json").is_file()
    assert (installed.home / "trust" / "license.jwt").stat().st_mode & 0o077 == 0


def test_license_for_another_channel_installs_nothing(engine, portal):
    beta_only = portal.issue(channels=("beta",))
    assert_ok(engine("init", "--root", portal.root_file(), "--license", beta_only))
    assert_fails(
        engine("install", portal.export("2026.11.0")),
        3,
        "license lic-0001 does not entitle channel 'stable' of bundle reference-2026.11.0",
    )
    assert _status(engine)["bundle"] is None


def test_renewed_license_is_verified_at_once_when_keys_are_known(installed, portal):
    renewed = portal.issue("renewed.jwt", jti="lic-0002")
    init = assert_ok(installed("init", "--root", portal.root_file(), "--license", renewed))
    assert "signature is verified with the portal's license keys" in init.stdout
    assert _status(installed)["license"]["license_id"] == "lic-0002"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not json", "trust root is not TUF metadata"),
        (b'{"signed": {}, "signatures": []}', "trust root is not TUF metadata"),
    ],
)
def test_init_refuses_a_file_that_is_not_root_metadata(engine, portal, tmp_path, content, message):
    root = tmp_path / "root.json"
    root.write_bytes(content)
    assert_fails(engine("init", "--root", root, "--license", portal.issue()), 4, message)
    assert not (engine.home / "trust" / "root.json").exists()


def test_init_refuses_other_metadata_passed_off_as_root(engine, portal):
    targets = portal.repo.metadata_file("targets")
    assert_fails(
        engine("init", "--root", targets, "--license", portal.issue()),
        4,
        "trust root is targets metadata, not root metadata",
    )


def test_init_refuses_a_root_altered_after_signing(engine, portal, tmp_path):
    document = json.loads(portal.repo.root_bytes())
    document["signed"]["expires"] = "2099-01-01T00:00:00Z"
    root = tmp_path / "root.json"
    root.write_text(json.dumps(document))
    assert_fails(
        engine("init", "--root", root, "--license", portal.issue()),
        4,
        "not signed by a threshold of its own root keys",
    )


def test_init_refuses_the_root_of_another_portal_once_initialised(
    installed, portal, tmp_path, engine_model_dir
):
    other = FakePortal.create(tmp_path / "other", engine_model_dir)
    assert_fails(
        installed("init", "--root", other.root_file(), "--license", portal.issue()),
        4,
        "the root given is not one this engine trusts",
    )


def test_init_refuses_a_portal_url_that_is_not_http(engine, portal):
    result = engine(
        "init", "--root", portal.root_file(), "--license", portal.issue(), "--portal", "ftp://x"
    )
    assert_fails(result, 2, "--portal must be an http(s) URL")


def test_init_needs_existing_files(engine, tmp_path):
    result = engine("init", "--root", tmp_path / "missing.json", "--license", tmp_path / "x")
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def test_grace_period_cannot_be_lengthened_in_config(installed, conversations_file):
    (installed.home / "config.json").write_text(json.dumps({"license_grace_days": 30}))
    assert_fails(installed("score", conversations_file), 2, "license_grace_days")


def test_status_of_an_uninitialised_home_says_to_run_init(engine):
    assert_fails(engine("status"), 3, "run `vigil-engine init --root ROOT.json")


def test_status_before_the_first_install(engine, portal):
    assert_ok(engine("init", "--root", portal.root_file(), "--license", portal.issue()))
    status = _status(engine)
    assert status["license"]["status"] == "unverified"
    assert status["license"]["signature_verified"] is False
    assert status["bundle"] is None
    shown = assert_ok(engine("status")).stdout
    assert "UNVERIFIED" in shown
    assert "none installed" in shown


def test_status_shows_license_bundle_and_trust_root(installed, portal):
    status = _status(installed)
    assert status["license"] | {"grace_ends": None, "expires": None} == {
        "status": "valid",
        "reason": None,
        "signature_verified": True,
        "grace_ends": None,
        "organisation": "Example Chat Ltd",
        "organisation_id": "org-42",
        "license_id": "lic-0001",
        "issuer": "https://portal.example",
        "issued_at": status["license"]["issued_at"],
        "not_before": status["license"]["not_before"],
        "expires": None,
        "channels": ["stable"],
        "max_engines": 3,
        "features": ["review_queue"],
    }
    assert status["bundle"]["label"] == "reference-2026.11.0"
    assert status["bundle"]["channel"] == "stable"
    assert status["bundle"]["integrity"] == "verified"
    assert status["bundle"]["previous_version"] is None
    assert status["trust_root"]["version"] == 1
    assert (status["last_update"], status["pending_reports"]) == (None, 0)

    shown = assert_ok(installed("status")).stdout
    for expected in (
        "VALID",
        "Example Chat Ltd (org-42)",
        "lic-0001",
        "reference-2026.11.0 (channel stable)",
        "files verified",
        "Pending reports",
        "version 1",
    ):
        assert expected in shown
