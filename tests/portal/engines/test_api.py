"""The engines' activation and lease API: seats, idempotence, renewals, and
leases an engine verifies with the license keys it already holds.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from licensing.leases import verify_lease
from licensing.tokens import verify_license
from portal.engines.models import Activation
from portal.events.service import list_events
from portal.events.tags import EventTag
from portal.repository.service import open_repository

if TYPE_CHECKING:
    from collections.abc import Callable

    from fastapi.testclient import TestClient
    from sqlalchemy.orm import Session

    from portal.settings import Settings
    from tests.portal.support import Licensed

ACTIVATE = "/api/v1/activations"
RENEW = "/api/v1/leases/renew"


def engine_body(engine_id: uuid.UUID | None = None, **overrides: object) -> dict[str, object]:
    return {
        "engine_id": str(engine_id or uuid.uuid4()),
        "hostname": "scorer-1.chat.example",
        "engine_version": "0.1.0",
        **overrides,
    }


def published_license_keys(settings: Settings) -> dict:
    return dict(open_repository(settings, signing=False).license_keys().keys)


def test_activation_gives_a_lease_the_engine_can_verify(
    client: TestClient, make_licensed: Callable[..., Licensed], initialised: Settings
) -> None:
    licensed = make_licensed()
    engine_id = uuid.uuid4()
    response = client.post(ACTIVATE, json=engine_body(engine_id), headers=licensed.headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"activation_id", "lease", "lease_expires_at"}
    assert body["lease_expires_at"].endswith("Z")
    keys = published_license_keys(initialised)
    lease = verify_lease(
        body["lease"], keys, engine_id=str(engine_id), license_id=str(licensed.license.id)
    )
    assert lease.claims.jti == body["activation_id"]
    assert lease.claims.iss == initialised.portal_url
    expires = datetime.fromisoformat(body["lease_expires_at"])
    assert lease.expires_at == expires
    assert (
        timedelta(days=7) - timedelta(seconds=5) < expires - datetime.now(UTC) <= timedelta(days=7)
    )
    # The same keys verify the license; a lease is never taken for a license.
    assert verify_license(licensed.token, keys)
    assert response.headers["cache-control"] == "no-store"


def test_activating_again_is_idempotent(
    client: TestClient, make_licensed: Callable[..., Licensed], session: Session
) -> None:
    licensed = make_licensed(max_engines=1)
    engine_id = uuid.uuid4()
    first = client.post(ACTIVATE, json=engine_body(engine_id), headers=licensed.headers)
    again = client.post(
        ACTIVATE, json=engine_body(engine_id, engine_version="0.2.0"), headers=licensed.headers
    )
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["activation_id"] == first.json()["activation_id"]
    activation = session.get(Activation, uuid.UUID(first.json()["activation_id"]))
    assert activation is not None
    assert activation.engine_version == "0.2.0"
    tags = [event.tag for event in list_events(session, subject_id=str(licensed.license.id))]
    assert tags.count(EventTag.ENGINE_ACTIVATED) == 1
    assert EventTag.LEASE_RENEWED in tags  # the version changed


def test_max_engines_is_enforced_and_the_refusal_audited(
    client: TestClient, make_licensed: Callable[..., Licensed], session: Session
) -> None:
    licensed = make_licensed(max_engines=2)
    for _ in range(2):
        assert (
            client.post(ACTIVATE, json=engine_body(), headers=licensed.headers).status_code == 201
        )
    refused = client.post(ACTIVATE, json=engine_body(), headers=licensed.headers)
    assert refused.status_code == 403
    assert refused.json()["error"] == "max_engines_reached"
    assert "2 engine seat" in refused.json()["detail"]
    [event] = list_events(session, tag=EventTag.ENGINE_REFUSED)
    assert event.subject_id == str(licensed.license.id)
    assert event.payload["max_engines"] == 2


def test_seats_are_counted_per_license(
    client: TestClient, make_licensed: Callable[..., Licensed]
) -> None:
    first = make_licensed("First Chat", max_engines=1)
    second = make_licensed("Second Chat", max_engines=1)
    engine_id = uuid.uuid4()
    assert (
        client.post(ACTIVATE, json=engine_body(engine_id), headers=first.headers).status_code == 201
    )
    assert (
        client.post(ACTIVATE, json=engine_body(engine_id), headers=second.headers).status_code
        == 201
    )


def test_renewal_gives_a_new_lease(
    client: TestClient, make_licensed: Callable[..., Licensed], initialised: Settings
) -> None:
    licensed = make_licensed()
    engine_id = uuid.uuid4()
    activated = client.post(ACTIVATE, json=engine_body(engine_id), headers=licensed.headers).json()
    response = client.post(RENEW, json={"engine_id": str(engine_id)}, headers=licensed.headers)
    assert response.status_code == 200
    renewed = response.json()
    assert renewed["activation_id"] == activated["activation_id"]
    lease = verify_lease(
        renewed["lease"], published_license_keys(initialised), engine_id=str(engine_id)
    )
    assert lease.claims.jti == activated["activation_id"]


def test_renewing_an_engine_that_never_activated_is_not_activated(
    client: TestClient, make_licensed: Callable[..., Licensed]
) -> None:
    response = client.post(
        RENEW, json={"engine_id": str(uuid.uuid4())}, headers=make_licensed().headers
    )
    assert response.status_code == 404
    assert response.json()["error"] == "not_activated"


def test_an_engine_of_another_license_cannot_renew_here(
    client: TestClient, make_licensed: Callable[..., Licensed]
) -> None:
    mine, theirs = make_licensed("Mine Chat"), make_licensed("Their Chat")
    engine_id = uuid.uuid4()
    client.post(ACTIVATE, json=engine_body(engine_id), headers=theirs.headers)
    response = client.post(RENEW, json={"engine_id": str(engine_id)}, headers=mine.headers)
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("state", "code"),
    [
        ({"status": "revoked"}, "license_revoked"),
        ({"status": "suspended"}, "license_suspended"),
        ({"expired": True}, "license_expired"),
    ],
)
def test_licenses_no_longer_served_cannot_activate_or_renew(
    client: TestClient, make_licensed: Callable[..., Licensed], state: dict, code: str
) -> None:
    licensed = make_licensed(**state)
    for url in (ACTIVATE, RENEW):
        response = client.post(url, json=engine_body(), headers=licensed.headers)
        assert response.status_code == 403
        assert response.json()["error"] == code


def test_a_suspended_license_can_renew_again_once_reinstated(
    make_client: Callable[..., TestClient],
    make_licensed: Callable[..., Licensed],
    session: Session,
) -> None:
    from portal.licenses import service as license_service  # noqa: PLC0415
    from tests.portal.support import ACTOR  # noqa: PLC0415

    client = make_client(engine_status_cache_seconds=0)  # no waiting for the status
    licensed = make_licensed()
    engine_id = uuid.uuid4()
    client.post(ACTIVATE, json=engine_body(engine_id), headers=licensed.headers)
    license_service.suspend_license(session, licensed.license.id, reason="check", actor=ACTOR)
    body = {"engine_id": str(engine_id)}
    assert client.post(RENEW, json=body, headers=licensed.headers).status_code == 403
    license_service.reinstate_license(session, licensed.license.id, actor=ACTOR)
    assert client.post(RENEW, json=body, headers=licensed.headers).status_code == 200


def test_anonymous_requests_are_refused(client: TestClient, initialised: Settings) -> None:
    response = client.post(ACTIVATE, json=engine_body())
    assert response.status_code == 401
    assert response.json()["error"] == "missing_license"


@pytest.mark.parametrize(
    "body",
    [
        {"engine_id": "not-a-uuid", "engine_version": "0.1.0"},
        {"engine_id": str(uuid.uuid4())},
        {"engine_id": str(uuid.uuid4()), "engine_version": ""},
        {"engine_id": str(uuid.uuid4()), "engine_version": "0.1.0", "hostname": "a\nb"},
        {"engine_id": str(uuid.uuid4()), "engine_version": "x" * 65},
        {"engine_id": str(uuid.uuid4()), "engine_version": "0.1.0", "hostname": "h" * 256},
        {"engine_id": str(uuid.uuid4()), "engine_version": 1},
    ],
)
def test_malformed_bodies_are_refused(
    client: TestClient, make_licensed: Callable[..., Licensed], body: dict
) -> None:
    response = client.post(ACTIVATE, json=body, headers=make_licensed().headers)
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"
    assert isinstance(response.json()["detail"], list)


def test_a_body_that_is_not_json_is_refused(
    client: TestClient, make_licensed: Callable[..., Licensed]
) -> None:
    headers = {**make_licensed().headers, "Content-Type": "application/json"}
    response = client.post(ACTIVATE, content=b"{not json", headers=headers)
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"


def test_host_names_are_taken_as_the_system_gives_them(
    client: TestClient, make_licensed: Callable[..., Licensed], session: Session
) -> None:
    licensed = make_licensed(max_engines=3)
    for given, kept in (("Ada's Laptop (büro)", "Ada's Laptop (büro)"), ("  ", None)):
        body = engine_body(hostname=given)
        response = client.post(ACTIVATE, json=body, headers=licensed.headers)
        assert response.status_code == 201
        activation = session.get(Activation, uuid.UUID(response.json()["activation_id"]))
        assert activation is not None
        assert activation.hostname == kept


def test_unknown_members_are_ignored(
    client: TestClient, make_licensed: Callable[..., Licensed]
) -> None:
    body = engine_body(features=["review_queue"], platform="linux")
    assert client.post(ACTIVATE, json=body, headers=make_licensed().headers).status_code == 201


@pytest.mark.parametrize("chunked", [False, True])
def test_bodies_over_64_kib_are_refused(
    client: TestClient, make_licensed: Callable[..., Licensed], chunked: bool
) -> None:
    oversized = json.dumps(engine_body(padding="x" * (64 * 1024))).encode()
    headers = {**make_licensed().headers, "Content-Type": "application/json"}

    def chunks():
        for start in range(0, len(oversized), 8192):
            yield oversized[start : start + 8192]

    response = client.post(ACTIVATE, content=chunks() if chunked else oversized, headers=headers)
    assert response.status_code == 413
    assert response.json()["error"] == "request_too_large"
