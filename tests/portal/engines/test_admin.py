"""Administrators see a license's active engines and free a seat."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from portal.events.tags import EventTag
from tests.portal.support import flash_of, post_form

if TYPE_CHECKING:
    from collections.abc import Callable

    from fastapi.testclient import TestClient

    from tests.portal.support import Licensed


def test_the_license_page_lists_engines_and_deactivation_stops_renewals(
    admin_client: TestClient, make_licensed: Callable[..., Licensed]
) -> None:
    licensed = make_licensed(max_engines=1)
    engine_id = uuid.uuid4()
    body = {
        "engine_id": str(engine_id),
        "hostname": "scorer-7.chat.example",
        "engine_version": "0.3.1",
    }
    # The engine API ignores the administrator's cookies: only the bearer license counts.
    activated = admin_client.post("/api/v1/activations", json=body, headers=licensed.headers)
    assert activated.status_code == 201
    activation_id = activated.json()["activation_id"]

    url = f"/admin/licenses/{licensed.license.id}"
    page = admin_client.get(url).text
    assert str(engine_id) in page
    assert "scorer-7.chat.example" in page
    assert "0.3.1" in page
    assert "1 of 1 seats in use" in page
    assert f"/engines/{activation_id}/deactivate" in page

    action = f"{url}/engines/{activation_id}/deactivate"
    done = post_form(admin_client, url, action, {})
    after = flash_of(admin_client, done)
    assert "Engine deactivated" in after
    assert "No engine has activated this license yet." in after
    assert EventTag.ENGINE_DEACTIVATED.value in after
    assert EventTag.ENGINE_ACTIVATED.value in after

    renewal = admin_client.post(
        "/api/v1/leases/renew", json={"engine_id": str(engine_id)}, headers=licensed.headers
    )
    assert renewal.status_code == 404
    assert renewal.json()["error"] == "not_activated"
    # Deactivating twice says why it cannot.
    again = post_form(admin_client, url, action, {})
    assert "already deactivated" in flash_of(admin_client, again)
    # The freed seat can be taken again.
    assert (
        admin_client.post("/api/v1/activations", json=body, headers=licensed.headers).status_code
        == 201
    )


def test_deactivating_an_unknown_engine_is_not_found(
    admin_client: TestClient, make_licensed: Callable[..., Licensed]
) -> None:
    licensed = make_licensed()
    url = f"/admin/licenses/{licensed.license.id}"
    for activation_id in (str(uuid.uuid4()), "not-an-id"):
        response = post_form(admin_client, url, f"{url}/engines/{activation_id}/deactivate", {})
        assert response.status_code == 404
