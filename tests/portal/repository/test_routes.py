"""The update repository under ``/tuf/``: only licensed engines, only what their
channels entitle, cacheable as TUF's consistent snapshots allow, and good
enough for the stock python-tuf client.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import pytest
from tuf.api import exceptions as tuf_exceptions
from tuf.ngclient.fetcher import FetcherInterface

from licensing.client import UpdateClient
from licensing.exceptions import RepositoryUnreachableError
from licensing.tokens import issue_license, verify_license
from portal.licenses import service as license_service
from portal.repository import service
from portal.repository.keystore import KeyRole
from tests.portal.support import ACTOR

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from fastapi.testclient import TestClient
    from sqlalchemy.orm import Session

    from portal.bundles.models import Bundle
    from portal.settings import Settings
    from tests.portal.support import Licensed

TIMESTAMP = "/tuf/metadata/timestamp.json"


class AppFetcher(FetcherInterface):
    """python-tuf's downloads through the app's test client, with the license
    as a bearer token (as the engine's HTTP fetcher sends it).
    """

    def __init__(self, client: TestClient, headers: dict[str, str]) -> None:
        self.client = client
        self.headers = headers

    def _fetch(self, url: str) -> Iterator[bytes]:
        response = self.client.get(url, headers=self.headers)
        if response.status_code != 200:
            raise tuf_exceptions.DownloadHTTPError(url, response.status_code)
        return iter([response.content])


def target_url(bundle_or_path: Bundle | str, targets: dict[str, object] | None = None) -> str:
    """The consistent-snapshot URL python-tuf downloads a target from."""
    if isinstance(bundle_or_path, str):
        assert targets is not None
        path = bundle_or_path
        sha256 = targets[path].hashes["sha256"]  # type: ignore[attr-defined]
    else:
        path, sha256 = bundle_or_path.target_path, bundle_or_path.sha256
    directory, _, name = path.rpartition("/")
    return f"/tuf/targets/{directory}/{sha256}.{name}"


@pytest.fixture
def published_targets(initialised: Settings, published_bundles: dict[str, Bundle]) -> dict:
    return service.open_repository(initialised, signing=False).published_targets()


#### Who may read ####


def test_anonymous_requests_are_refused_with_a_bearer_challenge(
    client: TestClient, published_bundles: dict[str, Bundle]
) -> None:
    for url in (TIMESTAMP, target_url(published_bundles["stable"])):
        response = client.get(url)
        assert response.status_code == 401
        assert response.json()["error"] == "missing_license"
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    "authorization",
    ["Bearer not-a-token", "Bearer a.b.c", "Bearer ", "bearer x.y"],
)
def test_a_bogus_bearer_token_is_invalid(
    client: TestClient, initialised: Settings, authorization: str
) -> None:
    response = client.get(TIMESTAMP, headers={"Authorization": authorization})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_license"
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_another_authentication_scheme_counts_as_no_license(
    client: TestClient, initialised: Settings
) -> None:
    response = client.get(TIMESTAMP, headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert response.status_code == 401
    assert response.json()["error"] == "missing_license"


def test_a_token_signed_by_a_foreign_key_is_invalid(
    client: TestClient, make_licensed: Callable[..., Licensed], initialised: Settings
) -> None:
    from licensing.keys import generate_private_key  # noqa: PLC0415

    licensed = make_licensed()
    claims = license_service.license_claims(licensed.license, issuer=initialised.portal_url)
    forged = issue_license(claims, generate_private_key())
    response = client.get(TIMESTAMP, headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_license"


@pytest.mark.parametrize(
    ("state", "code"),
    [
        ({"status": "revoked"}, "license_revoked"),
        ({"status": "suspended"}, "license_suspended"),
        ({"expired": True}, "license_expired"),
    ],
)
def test_licenses_the_portal_no_longer_serves_are_forbidden(
    client: TestClient,
    make_licensed: Callable[..., Licensed],
    published_bundles: dict[str, Bundle],
    state: dict[str, object],
    code: str,
) -> None:
    licensed = make_licensed(**state)
    for url in (TIMESTAMP, target_url(published_bundles["stable"])):
        response = client.get(url, headers=licensed.headers)
        assert response.status_code == 403, response.text
        assert response.json()["error"] == code


def test_revocation_takes_effect_on_the_next_request(
    client: TestClient, make_licensed: Callable[..., Licensed], session: Session, settings: Settings
) -> None:
    licensed = make_licensed()
    assert client.get(TIMESTAMP, headers=licensed.headers).status_code == 200
    license_service.revoke_license(
        session,
        licensed.license.id,
        reason="misuse",
        repository=service.open_repository(settings),
        actor=ACTOR,
    )
    # The verified signature is cached; the license's status never is.
    response = client.get(TIMESTAMP, headers=licensed.headers)
    assert response.status_code == 403
    assert response.json()["error"] == "license_revoked"


def test_a_license_signed_after_a_key_rotation_is_accepted_at_once(
    client: TestClient, make_licensed: Callable[..., Licensed], session: Session, settings: Settings
) -> None:
    old = make_licensed("Old Chat")
    assert client.get(TIMESTAMP, headers=old.headers).status_code == 200
    service.rotate_key(session, settings, KeyRole.LICENSE, actor=ACTOR)
    new = make_licensed("New Chat")
    new_key_id = service.license_signing_key(settings).key_id
    assert verify_license(
        new.token, {new_key_id: service.license_signing_key(settings).key.public_key()}
    )
    assert client.get(TIMESTAMP, headers=new.headers).status_code == 200
    assert client.get(TIMESTAMP, headers=old.headers).status_code == 200


#### Metadata ####


def test_timestamp_is_served_fresh_with_an_etag(
    client: TestClient, make_licensed: Callable[..., Licensed], initialised: Settings
) -> None:
    licensed = make_licensed()
    response = client.get(TIMESTAMP, headers=licensed.headers)
    assert response.status_code == 200
    on_disk = (initialised.repository_dir / "metadata" / "timestamp.json").read_bytes()
    assert response.content == on_disk
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["etag"] == f'"{hashlib.sha256(on_disk).hexdigest()}"'
    again = client.get(
        TIMESTAMP, headers={**licensed.headers, "If-None-Match": response.headers["etag"]}
    )
    assert again.status_code == 304
    assert again.content == b""
    # A re-signed timestamp is a new file: served at once, with a new ETag.
    service.refresh_timestamp(initialised)
    fresh = client.get(
        TIMESTAMP, headers={**licensed.headers, "If-None-Match": response.headers["etag"]}
    )
    assert fresh.status_code == 200
    assert fresh.headers["etag"] != response.headers["etag"]


def test_versioned_metadata_is_immutable(
    client: TestClient, make_licensed: Callable[..., Licensed], initialised: Settings
) -> None:
    licensed = make_licensed()
    for name in ("1.root.json", "1.snapshot.json", "2.targets.json"):
        response = client.get(f"/tuf/metadata/{name}", headers=licensed.headers)
        assert response.status_code == 200, name
        assert response.content == (initialised.repository_dir / "metadata" / name).read_bytes()
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert response.headers["etag"].startswith('"')


@pytest.mark.parametrize(
    "name",
    [
        "999.root.json",
        "root.json",
        "keys.json",
        "1.root.json.bak",
        ".lock",
        "%2e%2e%2fkeys",
        "..%2F..%2Fportal.db",
        "\uff11.root.json",  # a fullwidth digit one
    ],
)
def test_other_metadata_names_are_not_found(
    client: TestClient, make_licensed: Callable[..., Licensed], name: str
) -> None:
    response = client.get(f"/tuf/metadata/{name}", headers=make_licensed().headers)
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


#### Targets ####


def test_a_stable_license_downloads_the_stable_bundle(
    client: TestClient,
    make_licensed: Callable[..., Licensed],
    published_bundles: dict[str, Bundle],
) -> None:
    stable = published_bundles["stable"]
    response = client.get(target_url(stable), headers=make_licensed().headers)
    assert response.status_code == 200
    assert hashlib.sha256(response.content).hexdigest() == stable.sha256
    assert int(response.headers["content-length"]) == stable.length
    assert response.headers["content-type"] == "application/x-tar"
    assert response.headers["cache-control"] == "private, max-age=31536000, immutable"
    assert response.headers["etag"] == f'"{stable.sha256}"'


def test_a_stable_license_may_not_have_the_beta_channel(
    client: TestClient,
    make_licensed: Callable[..., Licensed],
    published_targets: dict,
    published_bundles: dict[str, Bundle],
) -> None:
    headers = make_licensed().headers
    for url in (
        target_url(published_bundles["beta"]),
        target_url("channels/beta.json", published_targets),
    ):
        response = client.get(url, headers=headers)
        assert response.status_code == 403
        assert response.json()["error"] == "channel_not_entitled"
    assert (
        client.get(
            target_url("channels/stable.json", published_targets), headers=headers
        ).status_code
        == 200
    )


def test_a_beta_license_downloads_the_beta_bundle(
    client: TestClient,
    make_licensed: Callable[..., Licensed],
    published_bundles: dict[str, Bundle],
) -> None:
    beta = published_bundles["beta"]
    licensed = make_licensed(channels=("beta",))
    response = client.get(target_url(beta), headers=licensed.headers)
    assert response.status_code == 200
    assert hashlib.sha256(response.content).hexdigest() == beta.sha256
    assert (
        client.get(target_url(published_bundles["stable"]), headers=licensed.headers).status_code
        == 403
    )


def test_license_keys_and_revocations_are_served_to_every_license(
    client: TestClient,
    make_licensed: Callable[..., Licensed],
    published_bundles: dict[str, Bundle],
    initialised: Settings,
) -> None:
    make_licensed("Gone Chat", status="revoked")
    targets = service.open_repository(initialised, signing=False).published_targets()
    headers = make_licensed(channels=("beta",)).headers
    for path in ("licensing/keys.json", "licensing/revocations.json"):
        response = client.get(target_url(path, targets), headers=headers)
        assert response.status_code == 200, path
        assert response.headers["content-type"] == "application/json"


def test_a_range_of_a_bundle_can_be_fetched_to_resume_a_download(
    client: TestClient,
    make_licensed: Callable[..., Licensed],
    published_bundles: dict[str, Bundle],
    initialised: Settings,
) -> None:
    stable = published_bundles["stable"]
    response = client.get(
        target_url(stable), headers={**make_licensed().headers, "Range": "bytes=0-99"}
    )
    assert response.status_code == 206
    assert len(response.content) == 100


def test_an_older_or_wrong_hash_is_not_found(
    client: TestClient,
    make_licensed: Callable[..., Licensed],
    published_bundles: dict[str, Bundle],
) -> None:
    stable = published_bundles["stable"]
    directory, _, name = stable.target_path.rpartition("/")
    response = client.get(
        f"/tuf/targets/{directory}/{'0' * 64}.{name}", headers=make_licensed().headers
    )
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


@pytest.mark.parametrize(
    "path",
    [
        "%2e%2e/%2e%2e/keys/license",
        "bundles/stable/..%2F..%2F..%2Fkeys%2Flicense",
        "..%2F..%2Fportal.db",
        "licensing/.%2E/.%2E/metadata/timestamp.json",
        "bundles//stable/x",
        "/etc/passwd",
        "%2Fetc%2Fpasswd",
        ".lock",
        "licensing",
        "",
    ],
)
def test_paths_outside_the_published_targets_are_not_found(
    client: TestClient,
    make_licensed: Callable[..., Licensed],
    published_bundles: dict[str, Bundle],
    path: str,
) -> None:
    response = client.get(f"/tuf/targets/{path}", headers=make_licensed().headers)
    assert response.status_code == 404, response.text
    assert b"BEGIN" not in response.content


def test_a_missing_file_on_disk_is_not_served(
    client: TestClient,
    make_licensed: Callable[..., Licensed],
    published_bundles: dict[str, Bundle],
    initialised: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    stable = published_bundles["stable"]
    service.open_repository(initialised, signing=False).target_file_path(
        stable.target_path
    ).unlink()
    response = client.get(target_url(stable), headers=make_licensed().headers)
    assert response.status_code == 404
    assert "is missing" in caplog.text


#### The stock python-tuf client ####


def test_the_python_tuf_updater_fetches_the_stable_bundle_through_the_routes(
    client: TestClient,
    make_licensed: Callable[..., Licensed],
    published_bundles: dict[str, Bundle],
    initialised: Settings,
    tmp_path: Path,
) -> None:
    licensed = make_licensed()
    root = service.open_repository(initialised, signing=False).root_bytes(1)
    update = UpdateClient(
        trusted_root=root,
        metadata_dir=tmp_path / "engine-tuf",
        metadata_base_url="http://testserver/tuf/metadata/",
        target_base_url="http://testserver/tuf/targets/",
        fetcher=AppFetcher(client, licensed.headers),
    )
    update.refresh()
    keys = update.license_keys()
    assert verify_license(licensed.token, keys.keys).claims.jti == str(licensed.license.id)
    assert update.revocations().version == 0
    index = update.channel_index("stable")
    assert index.bundle_version == "2026.11.0"
    bundle = update.fetch_bundle(index.target, tmp_path / "work")
    assert bundle.manifest.version == "2026.11.0"
    with pytest.raises(RepositoryUnreachableError, match="403"):
        update.channel_index("beta")
