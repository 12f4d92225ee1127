"""``vigil-portal`` licensing commands end to end: what an operator types and sees."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

import portal.db
from licensing.export import verify_exported_bundle
from licensing.tokens import verify_license
from portal.licenses import service as license_service
from portal.settings import get_settings
from tests.portal.support import PASSPHRASE, PortalCli

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from sqlalchemy.engine import Connection
    from typer.testing import Result


def _ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


def _fails(result: Result, code: int, message: str) -> None:
    assert result.exit_code == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    assert message in lines[0]


def test_operator_flow_from_init_to_key_rotation(
    cli: PortalCli, make_model_dir: Callable[..., Path], tmp_path: Path, portal_home: Path
) -> None:
    init = _ok(cli("init", "--admin-email", "admin@portal.example"))
    assert "created" in init.stdout
    assert "administrator admin@portal.example created" in init.stdout
    assert "otpauth://totp/" in init.stdout

    published = _ok(
        cli(
            "bundles",
            "publish",
            str(make_model_dir()),
            "--version",
            "2026.11.0",
            "--name",
            "reference",
        )
    )
    assert "published reference-2026.11.0 on stable" in published.stdout

    export = tmp_path / "reference-2026.11.0.vigil"
    _ok(cli("bundles", "export", "2026.11.0", "--out", str(export)))

    token_file = tmp_path / "license.jwt"
    issued = _ok(
        cli(
            "licenses",
            "issue",
            "--org",
            "Example Chat Ltd",
            "--days",
            "30",
            "--channel",
            "beta",
            "--channel",
            "stable",
            "--max-engines",
            "3",
            "--out",
            str(token_file),
        )
    )
    license_id = issued.stdout.strip()
    assert uuid.UUID(license_id)
    assert oct(token_file.stat().st_mode & 0o777) == "0o600"

    root_file = tmp_path / "root.json"
    _ok(cli("repo", "root", "--out", str(root_file)))

    # What an adopter holds now verifies: the export against the root, the license
    # against the license keys the export carries.
    verified = verify_exported_bundle(export, root_file.read_bytes(), tmp_path / "engine")
    assert verified.bundle.manifest.label == "reference-2026.11.0"
    claims = verify_license(token_file.read_text(), verified.license_keys.keys).claims
    assert (claims.jti, claims.org_name, claims.max_engines) == (license_id, "Example Chat Ltd", 3)
    assert claims.channels == ("beta", "stable")

    revoked = _ok(cli("licenses", "revoke", license_id, "--reason", "contract ended"))
    assert "revocation list version 1 published" in revoked.stdout

    for role in ("license", "root", "targets", "snapshot", "timestamp"):
        rotated = _ok(cli("keys", "rotate", role))
        assert f"rotated the {role} key" in rotated.stdout

    # An engine holding the first root follows the chain and learns the revocation.
    second_export = tmp_path / "again.vigil"
    _ok(cli("bundles", "export", "2026.11.0", "--out", str(second_export)))
    again = verify_exported_bundle(second_export, root_file.read_bytes(), tmp_path / "engine-2")
    assert again.root_version == 5
    assert license_id in again.revocations.revoked_ids
    assert len(again.license_keys.keys) == 2

    listed = _ok(cli("licenses", "list", "--json"))
    assert json.loads(listed.stdout)["status"] == "revoked"
    assert (portal_home / "keys" / "license").is_dir()


def test_init_twice_keeps_keys_and_says_what_exists(cli: PortalCli, portal_home: Path) -> None:
    _ok(cli("init"))
    keys = {path: path.read_bytes() for path in (portal_home / "keys").rglob("*.pem")}
    second = _ok(cli("init"))
    assert "created" not in second.stdout
    assert second.stdout.count("exists") == 6
    assert {path: path.read_bytes() for path in (portal_home / "keys").rglob("*.pem")} == keys


def test_init_warns_when_keys_are_not_encrypted(
    cli: PortalCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VIGIL_KEY_PASSPHRASE")
    get_settings.cache_clear()
    result = _ok(cli("init"))
    assert "WITHOUT encryption" in result.stderr


@pytest.fixture
def initialised_cli(cli: PortalCli) -> PortalCli:
    _ok(cli("init"))
    return cli


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("licenses", "revoke", "not-an-id", "--reason", "x"), 2, "is not a license id"),
        (("licenses", "revoke", str(uuid.UUID(int=1)), "--reason", "x"), 3, "no license"),
        (("bundles", "export", "9.9.9", "--out", "x.tar"), 4, "no published bundle"),
        (("bundles", "publish", "missing-dir", "--version", "1.0"), 2, "is not a directory"),
        (("repo", "root", "--out", "/no/such/dir/root.json"), 2, "is not a directory"),
    ],
)
def test_errors_are_one_line_with_their_exit_code(
    initialised_cli: PortalCli, args: tuple[str, ...], code: int, message: str
) -> None:
    _fails(initialised_cli(*args), code, message)


def test_revoking_twice_is_a_license_problem(initialised_cli: PortalCli, tmp_path: Path) -> None:
    issued = _ok(
        initialised_cli(
            "licenses", "issue", "--org", "Acme", "--days", "1", "--out", str(tmp_path / "t")
        )
    )
    license_id = issued.stdout.strip()
    _ok(initialised_cli("licenses", "revoke", license_id, "--reason", "abuse"))
    _fails(initialised_cli("licenses", "revoke", license_id, "--reason", "abuse"), 3, "is revoked")


def test_publishing_a_version_twice_is_a_bundle_problem(
    initialised_cli: PortalCli, make_model_dir: Callable[..., Path]
) -> None:
    model_dir = str(make_model_dir())
    _ok(initialised_cli("bundles", "publish", model_dir, "--version", "1.0"))
    _fails(
        initialised_cli("bundles", "publish", model_dir, "--version", "1.0"), 4, "already published"
    )


def test_issue_never_overwrites_a_token_file(initialised_cli: PortalCli, tmp_path: Path) -> None:
    out = tmp_path / "existing.jwt"
    out.write_text("keep me")
    _fails(
        initialised_cli("licenses", "issue", "--org", "Acme", "--days", "1", "--out", str(out)),
        2,
        "exists",
    )
    assert out.read_text() == "keep me"


def test_no_token_file_is_left_when_the_license_is_not_recorded(
    initialised_cli: PortalCli,
    monkeypatch: pytest.MonkeyPatch,
    connection: Connection,
    tmp_path: Path,
) -> None:
    class UncommittableSession(Session):
        def commit(self) -> None:
            raise OperationalError("COMMIT", {}, Exception("database is locked"))

    factory = sessionmaker(
        bind=connection, class_=UncommittableSession, join_transaction_mode="create_savepoint"
    )
    monkeypatch.setattr(portal.db, "get_sessionmaker", lambda: factory)
    out = tmp_path / "token.jwt"
    result = initialised_cli("licenses", "issue", "--org", "Acme", "--days", "1", "--out", str(out))
    _fails(result, 1, "database is locked")
    assert not out.exists()


@pytest.mark.parametrize(
    "args",
    [
        ("licenses", "issue", "--org", "Acme", "--days", "0", "--out", "t"),
        ("licenses", "issue", "--org", "Acme", "--days", "1", "--channel", "nightly", "--out", "t"),
        ("bundles", "publish", ".", "--version", "1.0", "--channel", "nightly"),
        ("keys", "rotate", "master"),
        ("licenses", "revoke", "x"),
    ],
)
def test_bad_usage_exits_2(cli: PortalCli, args: tuple[str, ...]) -> None:
    assert cli(*args).exit_code == 2


def test_commands_before_init_say_to_run_it(cli: PortalCli, tmp_path: Path) -> None:
    _fails(cli("repo", "root", "--out", str(tmp_path / "root.json")), 2, "vigil-portal init")


def test_production_without_passphrase_is_refused(
    cli: PortalCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIGIL_ENVIRONMENT", "production")
    monkeypatch.delenv("VIGIL_KEY_PASSPHRASE")
    get_settings.cache_clear()
    _fails(cli("init"), 2, "VIGIL_KEY_PASSPHRASE must be set")


def test_wrong_passphrase_is_refused(
    initialised_cli: PortalCli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VIGIL_KEY_PASSPHRASE", PASSPHRASE + " but wrong")
    get_settings.cache_clear()
    _fails(
        initialised_cli(
            "licenses", "issue", "--org", "Acme", "--days", "1", "--out", str(tmp_path / "t")
        ),
        2,
        "wrong passphrase",
    )


def test_unexpected_errors_exit_1_in_one_line(
    initialised_cli: PortalCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("something [odd] happened")

    monkeypatch.setattr(license_service, "list_licenses", broken)
    _fails(
        initialised_cli("licenses", "list"), 1, "unexpected RuntimeError: something [odd] happened"
    )


@pytest.fixture
def own_database(portal_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[PortalCli]:
    """The CLI on the default database (SQLite in VIGIL_PORTAL_HOME), not the test one."""
    monkeypatch.delenv("VIGIL_DATABASE_URL")
    get_settings.cache_clear()
    portal.db.get_engine.cache_clear()
    portal.db.get_sessionmaker.cache_clear()
    yield PortalCli(CliRunner())
    portal.db.get_engine().dispose()
    portal.db.get_engine.cache_clear()
    portal.db.get_sessionmaker.cache_clear()


def test_db_upgrade_creates_the_default_database(
    own_database: PortalCli, portal_home: Path
) -> None:
    result = _ok(own_database("db", "upgrade"))
    assert (portal_home / "portal.db").is_file()
    (head,) = ScriptDirectory.from_config(portal.db.alembic_config()).get_heads()
    assert f"is at revision {head}" in result.stdout


def test_a_database_without_schema_says_to_upgrade(own_database: PortalCli) -> None:
    _fails(own_database("licenses", "list"), 1, "vigil-portal db upgrade")
