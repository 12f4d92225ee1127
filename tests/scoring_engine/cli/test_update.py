"""``vigil-engine init --portal``, ``update`` and ``status`` against a portal over HTTP.

The portal is ``tests.scoring_engine.portal_server`` (the contract's routes on
127.0.0.1); each test asserts what the adopter sees: exit code (SPEC §6) and the one line
on stderr. Times move through ``scoring_engine.trust.clock``, never by sleeping.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from licensing.keys import generate_private_key
from licensing.tokens import issue_license
from scoring_engine import trust
from tests.scoring_engine.conftest import Engine
from tests.scoring_engine.licensed import assert_fails, assert_ok
from tests.scoring_engine.portal_server import SilentListener, closed_port_url

STABLE_11 = "bundles/stable/reference-2026.11.0.tar"
STABLE_12 = "bundles/stable/reference-2026.12.0.tar"


def _init(engine, portal, url, license_file=None):
    return engine(
        "init",
        "--root",
        portal.root_file(),
        "--license",
        license_file or portal.issue(),
        "--portal",
        url,
    )


def _status(engine):
    return json.loads(assert_ok(engine("status", "--json")).stdout)


def _config(engine, **changes):
    path = engine.home / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def _set_clock(monkeypatch, moment):
    monkeypatch.setattr(trust, "clock", lambda: moment)


@pytest.fixture
def online(engine, portal, portal_url):
    """An engine initialised with --portal and updated once (bundle 2026.11.0)."""
    assert_ok(_init(engine, portal, portal_url))
    assert_ok(engine("update"))
    return engine


def _second_engine(tmp_path):
    return Engine(home=tmp_path / "second-engine-home", runner=CliRunner())


#### Updating ####


def test_init_with_portal_activates_and_update_installs_the_channel_bundle(
    engine, portal, portal_url, conversations_file
):
    init = assert_ok(_init(engine, portal, portal_url + "/"))
    assert "Activated this engine (" in init.stdout
    assert f"at {portal_url}: activation act-" in init.stdout
    assert "its signature is verified with the license keys at the first update" in init.stdout
    assert "Next: vigil-engine update" in init.stdout
    assert json.loads((engine.home / "config.json").read_text())["portal_url"] == portal_url

    update = assert_ok(engine("update"))
    assert "Updated to reference-2026.11.0 (channel stable)" in update.stdout
    assert "verified against trust root version 1" in update.stdout
    assert "Previous bundle: none." in update.stdout
    assert "Lease renewed: engine" in update.stdout

    score = assert_ok(engine("score", conversations_file))
    assert {json.loads(line)["bundle"] for line in score.stdout.splitlines()} == {
        "reference-2026.11.0"
    }
    status = _status(engine)
    assert status["license"]["status"] == "valid"
    assert status["engine_id"] == json.loads((engine.home / "engine.json").read_text())["engine_id"]
    assert status["activation"]["status"] == "active"
    assert status["activation"]["lease_verified"] is True
    assert status["last_update"] == status["last_check"]
    assert status["available"] == {
        "label": "reference-2026.11.0",
        "version": "2026.11.0",
        "channel": "stable",
        "newer_than_installed": False,
    }
    assert status["portal"] == portal_url


def test_update_installs_a_newly_published_version_and_keeps_the_previous(
    online, portal, conversations_file
):
    portal.publish("2026.12.0")
    update = assert_ok(online("update"))
    assert "Updated to reference-2026.12.0 (channel stable)" in update.stdout
    assert "Previous bundle: reference-2026.11.0." in update.stdout

    bundle = _status(online)["bundle"]
    assert (bundle["version"], bundle["previous_version"]) == ("2026.12.0", "2026.11.0")
    kept = {path.name for path in (online.home / "bundles").iterdir() if path.is_dir()}
    assert kept == {"2026.11.0", "2026.12.0"}
    score = assert_ok(online("score", conversations_file))
    assert {json.loads(line)["bundle"] for line in score.stdout.splitlines()} == {
        "reference-2026.12.0"
    }


def test_nothing_new_is_up_to_date(online, portal_server):
    served = len(portal_server.requests)
    update = assert_ok(online("update"))
    assert "Up to date: reference-2026.11.0 is the newest bundle of channel stable." in (
        update.stdout
    )
    # Metadata and the channel index only: the bundle is not downloaded again.
    fetched = [path for _, path in portal_server.requests[served:]]
    assert not any(path.startswith("/tuf/targets/bundles/") for path in fetched)


def test_update_if_due_skips_until_the_interval_has_passed(online, portal_server, monkeypatch):
    served = len(portal_server.requests)
    skipped = assert_ok(online("update", "--if-due"))
    assert skipped.stdout.startswith("update not due: last successful check ")
    assert "(every 24 h)" in skipped.stdout
    assert len(skipped.stdout.strip().splitlines()) == 1
    assert len(portal_server.requests) == served

    _config(online, update_interval_hours=1)
    _set_clock(monkeypatch, datetime.now(UTC) + timedelta(hours=2))
    due = assert_ok(online("update", "--if-due"))
    assert "Up to date" in due.stdout
    assert len(portal_server.requests) > served


def test_update_if_due_on_a_new_engine_updates_at_once(engine, portal, portal_url):
    assert_ok(_init(engine, portal, portal_url))
    assert "Updated to reference-2026.11.0" in assert_ok(engine("update", "--if-due")).stdout


def test_a_configured_channel_the_license_does_not_grant_is_refused(online):
    _config(online, channel="beta")
    assert_fails(online("update"), 3, "config.json sets channel 'beta'")


def test_update_without_a_portal_is_bad_usage(engine, portal):
    assert_ok(engine("init", "--root", portal.root_file(), "--license", portal.issue()))
    assert_fails(engine("update"), 2, "names no portal")


#### The license and the seats ####


def test_license_revoked_by_the_portal_stops_updates_and_scoring(
    online, portal, portal_server, conversations_file
):
    portal_server.license_status["lic-0001"] = "revoked"
    assert_fails(online("update"), 3, "the portal revoked license lic-0001")
    assert_fails(
        online("score", conversations_file), 3, "license lic-0001 was revoked by the portal on "
    )
    assert_fails(online("evaluate", conversations_file), 3, "revoked by the portal")
    status = _status(online)
    assert status["license"]["status"] == "revoked"
    assert "failed" not in status
    assert "revoked" in status["last_error"]

    # A revocation is final: the engine does not ask again.
    served = len(portal_server.requests)
    assert_fails(online("update"), 3, "revoked by the portal")
    assert len(portal_server.requests) == served

    # A new license clears it.
    renewed = portal.issue("renewed.jwt", jti="lic-0002")
    assert_ok(_init(online, portal, portal_server.base_url, renewed))
    assert_ok(online("score", conversations_file))
    assert "Up to date" in assert_ok(online("update")).stdout


def test_suspended_license_scores_again_once_the_portal_reinstates_it(
    online, portal_server, conversations_file
):
    portal_server.license_status["lic-0001"] = "suspended"
    assert_fails(online("update"), 3, "the portal suspended license lic-0001")
    assert_fails(online("score", conversations_file), 3, "was suspended by the portal on ")
    assert _status(online)["license"]["status"] == "suspended"

    portal_server.license_status["lic-0001"] = "active"
    assert_ok(online("update"))
    assert_ok(online("score", conversations_file))


def test_an_engine_beyond_the_licensed_number_is_refused(engine, portal, portal_url, tmp_path):
    license_file = portal.issue(max_engines=1)
    assert_ok(_init(engine, portal, portal_url, license_file))
    second = _second_engine(tmp_path)
    assert_fails(
        _init(second, portal, portal_url, license_file),
        3,
        "this license allows 1 engine; all are in use; ask an administrator to deactivate one",
    )
    assert _status(second)["activation"]["status"] == "refused"
    assert_fails(second("update"), 3, "all are in use")
    # The first engine keeps its seat; activating it again does not take a second one.
    assert_ok(_init(engine, portal, portal_url, license_file))
    assert_ok(engine("update"))


def test_a_deactivated_engine_is_told_how_to_activate_again(online, portal, portal_server):
    engine_id = _status(online)["engine_id"]
    portal_server.deactivate("lic-0001", engine_id)
    assert_fails(online("update"), 3, "this engine is not activated at")
    assert _status(online)["activation"]["status"] == "deactivated"
    # Not re-activated behind the administrator's back.
    served = len(portal_server.requests)
    assert_fails(online("update"), 3, "to activate it again")
    assert len(portal_server.requests) == served

    assert_ok(_init(online, portal, portal_server.base_url))
    assert _status(online)["engine_id"] == engine_id
    assert_ok(online("update"))


def test_channel_the_portal_does_not_entitle_is_refused(engine, portal, portal_server):
    portal.publish("2026.11.1", channel="beta")
    beta = portal.issue(channels=("beta",))
    portal_server.entitled["lic-0001"] = ("stable",)
    assert_ok(_init(engine, portal, portal_server.base_url, beta))
    assert_fails(
        engine("update"), 3, "the portal does not entitle license lic-0001 to channel 'beta'"
    )


def test_a_license_the_portal_did_not_issue_is_refused_clearly(engine, portal, portal_url):
    bogus = portal.write_token(issue_license(portal.claims(), generate_private_key()), "bogus.jwt")
    assert_fails(
        _init(engine, portal, portal_url, bogus),
        3,
        f"the portal at {portal_url} does not accept license lic-0001",
    )


def test_a_proxy_stripping_the_license_is_named(online, portal_server):
    portal_server.tampering.strip_authorization = True
    assert_fails(online("update"), 3, "received no license")


def test_a_channel_without_bundles_says_so(engine, portal, portal_url):
    assert_ok(_init(engine, portal, portal_url, portal.issue(channels=("beta",))))
    assert_fails(engine("update"), 4, "publishes no bundle on channel 'beta'")


@pytest.mark.parametrize(
    "forgery",
    [
        {"lease_key": "foreign"},
        {"lease_engine_id": "00000000-0000-4000-8000-000000000000"},
    ],
    ids=["signed-by-another-key", "issued-to-another-engine"],
)
def test_a_lease_that_does_not_verify_stops_the_update(engine, portal, portal_server, forgery):
    portal_server.tampering.lease_key = generate_private_key() if "lease_key" in forgery else None
    portal_server.tampering.lease_engine_id = forgery.get("lease_engine_id")
    assert_ok(_init(engine, portal, portal_server.base_url))
    assert_fails(engine("update"), 3, "the portal's lease for this engine does not verify")
    assert _status(engine)["bundle"] is None


def test_portal_text_reaches_the_terminal_as_one_clean_line(online, portal_server):
    portal_server.tampering.status = 403
    portal_server.tampering.body = json.dumps(
        {"error": "license_suspended", "detail": "\x1b[2J][bold]cleared\nsecond line" + "x" * 1000}
    ).encode()
    result = online("update")
    assert_fails(result, 3, "the portal suspended license lic-0001 ([2J][bold]cleared second line")
    assert "\x1b" not in result.stderr
    assert len(result.stderr) < 800


def test_an_answer_that_is_not_the_contract_is_unreachable(engine, portal, portal_server):
    portal_server.tampering.status = 200
    portal_server.tampering.body = b"<html>captive portal</html>"
    assert_fails(
        _init(engine, portal, portal_server.base_url), 5, "the portal's answer is not JSON"
    )


#### The portal cannot be reached ####


def test_portal_down_at_init_keeps_the_offline_state_and_update_activates_later(
    engine, portal, portal_url
):
    down = closed_port_url()
    assert_fails(
        _init(engine, portal, down),
        5,
        "run `vigil-engine update` once the portal is reachable to activate this engine",
    )
    status = _status(engine)
    assert status["license"]["license_id"] == "lic-0001"
    assert status["activation"]["status"] == "pending"
    assert_fails(engine("update"), 5, f"portal {down} unreachable: cannot connect")

    _config(engine, portal_url=portal_url)
    update = assert_ok(engine("update"))
    assert "Activated: engine" in update.stdout
    assert "Updated to reference-2026.11.0" in update.stdout


def test_a_portal_that_does_not_answer_times_out(online):
    listener = SilentListener()
    try:
        _config(online, portal_url=listener.base_url, portal_timeout_seconds=0.2)
        assert_fails(online("update"), 5, "did not answer within the timeout")
    finally:
        listener.close()
    assert "did not answer" in _status(online)["last_error"]


@pytest.mark.parametrize(
    ("status", "location", "message"),
    [
        (503, None, "answered HTTP 503"),
        (301, "https://elsewhere.example/", "redirected to https://elsewhere.example/"),
    ],
)
def test_a_portal_error_or_redirect_is_unreachable(
    online, portal_server, status, location, message
):
    portal_server.tampering.status = status
    portal_server.tampering.location = location
    assert_fails(online("update"), 5, message)


#### Attacks on the update ####


def test_replayed_older_metadata_is_refused_as_rollback(
    online, portal, portal_server, tmp_path, conversations_file
):
    old = portal_server.snapshot_metadata(tmp_path / "old-metadata")
    portal.publish("2026.12.0")
    assert_ok(online("update"))
    portal_server.tampering.metadata_dir = old
    assert_fails(online("update"), 4, "older than metadata this engine already verified")
    assert _status(online)["bundle"]["version"] == "2026.12.0"
    assert_ok(online("score", conversations_file))


def test_frozen_metadata_is_refused_once_it_expires(online, monkeypatch):
    # The portal (or a mirror) keeps serving the same timestamp; two days later it expired.
    _set_clock(monkeypatch, datetime.now(UTC) + timedelta(days=2))
    assert_fails(online("update"), 4, "expired")


def test_a_tampered_bundle_is_refused_and_the_installed_one_kept(
    online, portal, portal_server, conversations_file
):
    portal.publish("2026.12.0")
    portal_server.tampering.altered_targets.add(STABLE_12)
    assert_fails(
        online("update"),
        4,
        f"refused while downloading {STABLE_12}: the download does not match its signed length",
    )
    assert _status(online)["bundle"]["version"] == "2026.11.0"
    assert_ok(online("score", conversations_file))


@pytest.mark.parametrize("announced", [True, False], ids=["content-length", "streamed"])
def test_an_oversized_answer_is_refused(online, portal_server, announced):
    portal_server.tampering.padded_metadata["timestamp.json"] = 3 * 1024 * 1024
    portal_server.tampering.announce_length = announced
    assert_fails(online("update"), 4, "oversized answer (/tuf/metadata/timestamp.json ")


def test_a_bundle_for_a_newer_engine_is_shown_as_available_but_not_installed(online, portal):
    portal.publish("2026.12.0", engine_version=">=9.0")
    assert_fails(online("update"), 4, "engine")
    status = _status(online)
    assert status["bundle"]["version"] == "2026.11.0"
    assert status["available"]["version"] == "2026.12.0"
    assert status["available"]["newer_than_installed"] is True
    assert status["last_error"]


#### Status ####


def test_status_shows_the_portal_side_without_going_online(online, portal_server):
    served = len(portal_server.requests)
    shown = assert_ok(online("status")).stdout
    assert len(portal_server.requests) == served
    for label in ("Engine id", "Activation", "Last update", "Last check", "Available"):
        assert label in shown
    assert "active (activation act-" in shown
