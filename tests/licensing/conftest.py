"""Factories for the licensing tests: keys, claims, model files, repositories,
and a minimal file fetcher for the stock python-tuf ``Updater``.

Everything is small and in memory or under ``tmp_path``; times are fixed so
no test sleeps or depends on the wall clock, except where a stock ``Updater``
(which reads the wall clock itself) is used against a repository signed "now".
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import pytest
from tuf.api import exceptions as tuf_exceptions
from tuf.ngclient.fetcher import FetcherInterface
from tuf.ngclient.updater import Updater

from licensing.bundles import BundleManifest, build_bundle
from licensing.keys import generate_private_key, key_id
from licensing.repository import Repository, RepositoryExpiries
from licensing.tokens import LicenseClaims

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

FIXED_NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ROLES = ("root", "targets", "snapshot", "timestamp")


class DirectoryFetcher(FetcherInterface):
    """Test-only fetcher: maps ``file:`` URLs to files, 404 when missing.

    Deliberately independent of ``licensing.client.LocalFileFetcher`` so the
    repository layout is checked by python-tuf alone.
    """

    def _fetch(self, url: str) -> Iterator[bytes]:
        path = Path(unquote(urlsplit(url).path))
        if not path.is_file():
            raise tuf_exceptions.DownloadHTTPError(f"{url} not found", 404)
        return iter([path.read_bytes()])


@pytest.fixture(autouse=True)
def _no_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    # Durability is not under test; fsync only makes a loaded CI machine wait.
    monkeypatch.setattr(os, "fsync", lambda _fd: None)


@pytest.fixture
def now() -> datetime:
    return FIXED_NOW


@pytest.fixture(scope="session")
def license_key() -> Ed25519PrivateKey:
    return generate_private_key()


@pytest.fixture
def trusted_keys(license_key: Ed25519PrivateKey) -> dict[str, Any]:
    return {key_id(license_key): license_key.public_key()}


@pytest.fixture
def make_claims(now: datetime) -> Callable[..., LicenseClaims]:
    def factory(**overrides: Any) -> LicenseClaims:
        # A license issued 30 days before it expires, unless told otherwise.
        exp = overrides.get("exp", now + timedelta(days=30))
        issued = min(now - timedelta(days=1), exp - timedelta(days=30))
        values: dict[str, Any] = {
            "iss": "https://portal.example",
            "sub": "org-42",
            "jti": "lic-0001",
            "iat": issued,
            "nbf": issued,
            "exp": exp,
            "org_name": "Example Chat Ltd",
            "channels": ("stable",),
            "max_engines": 3,
            "features": ("review_queue",),
        }
        values.update(overrides)
        return LicenseClaims(**values)

    return factory


@pytest.fixture
def make_manifest(now: datetime) -> Callable[..., BundleManifest]:
    def factory(**overrides: Any) -> BundleManifest:
        values: dict[str, Any] = {
            "name": "reference",
            "version": "2026.11.0",
            "created": now,
            "engine_version": ">=0.1,<1.0",
            "training_data_digest": "sha256:" + "ab" * 32,
            "metrics": {"pr_auc": 0.91, "recall_at_1pct_fpr": 0.7},
            "recommended_threshold": 0.8,
            "characteristics": ("secrecy", "isolation"),
        }
        values.update(overrides)
        return BundleManifest(**values)

    return factory


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "model"
    directory.mkdir()
    (directory / "model.skops").write_bytes(b"PK\x03\x04 dummy skops bytes")
    (directory / "MODEL_CARD.md").write_text("# Reference model\n\nDummy card.\n")
    return directory


@pytest.fixture
def make_bundle(
    tmp_path: Path, model_dir: Path, make_manifest: Callable[..., BundleManifest]
) -> Callable[..., Path]:
    def factory(version: str = "2026.11.0", **overrides: Any) -> Path:
        out = tmp_path / "bundles" / f"reference-{version}.tar"
        build_bundle(model_dir, out, make_manifest(version=version, **overrides))
        return out

    return factory


def new_role_keys(root_keys: int = 1) -> dict[str, list[Ed25519PrivateKey]]:
    keys = {role: [generate_private_key()] for role in ROLES}
    keys["root"] = [generate_private_key() for _ in range(root_keys)]
    return keys


@dataclass
class Portal:
    """A repository with its keys and a published license key, as a portal has."""

    repo: Repository
    role_keys: dict[str, list[Ed25519PrivateKey]]
    license_key: Ed25519PrivateKey

    @property
    def all_keys(self) -> list[Ed25519PrivateKey]:
        return [key for keys in self.role_keys.values() for key in keys]


@pytest.fixture
def make_portal(tmp_path: Path) -> Callable[..., Portal]:
    counter = iter(range(1000))

    def factory(
        *,
        clock: Callable[[], datetime] | None = None,
        expiries: RepositoryExpiries | None = None,
        root_keys: int = 1,
        root_threshold: int = 1,
    ) -> Portal:
        role_keys = new_role_keys(root_keys)
        repo = Repository.create(
            tmp_path / f"portal-{next(counter)}",
            role_keys,
            root_threshold=root_threshold,
            expiries=expiries,
            clock=clock,
        )
        license_signing_key = generate_private_key()
        repo.set_license_keys([license_signing_key.public_key()])
        repo.publish()
        return Portal(repo=repo, role_keys=role_keys, license_key=license_signing_key)

    return factory


@pytest.fixture
def make_updater() -> Callable[..., Updater]:
    """A stock python-tuf Updater over a repository directory."""

    def factory(repo: Repository, client_dir: Path, bootstrap: bytes) -> Updater:
        root = repo.directory.resolve()
        return Updater(
            str(client_dir),
            (root / "metadata").as_uri() + "/",
            target_dir=str(client_dir / "downloads"),
            target_base_url=(root / "targets").as_uri() + "/",
            fetcher=DirectoryFetcher(),
            bootstrap=bootstrap,
        )

    return factory
