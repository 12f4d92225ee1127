"""``scoring_engine.remote``: what is sent to the portal and how its answers are bounded."""

from __future__ import annotations

import base64
import gzip
import json
import random
from datetime import UTC, datetime

import pytest

from scoring_engine.remote import (
    FEEDBACK_PATH,
    LEASE_HEADER,
    USAGE_PATH,
    PortalConnectionError,
    PortalFetcher,
    PortalResponseError,
    PortalTransport,
    RemoteSettings,
    ReportApi,
    ResponseTooLargeError,
    _proxy_for,
    is_private_channel,
    retry_after_seconds,
)


@pytest.mark.parametrize(
    ("url", "private"),
    [
        ("https://portal.example", True),
        ("http://127.0.0.1:8000", True),
        ("http://localhost:8000", True),
        ("http://[::1]:8000", True),
        ("http://portal.example", False),
    ],
)
def test_the_license_travels_in_clear_only_to_this_machine(url, private):
    assert is_private_channel(url) is private


def test_proxies_come_from_the_environment_but_never_for_loopback(monkeypatch):
    monkeypatch.setenv("https_proxy", "http://proxy.corp:3128")
    monkeypatch.setenv("no_proxy", "internal.corp,.lan")
    assert _proxy_for("https", "portal.example") == "http://proxy.corp:3128"
    assert _proxy_for("https", "portal.internal.corp") is None
    assert _proxy_for("https", "vigil.lan") is None
    assert _proxy_for("https", "127.0.0.1") is None


def test_every_request_carries_the_license_and_asks_for_plain_bytes(portal_server):
    seen = {}

    def remember(handler):
        seen.update(handler.headers)

    portal_server.on_request = remember
    transport = PortalTransport(portal_server.base_url, "TOKEN", RemoteSettings())
    with transport:
        fetcher = PortalFetcher(transport)
        with pytest.raises(PortalResponseError) as refused:
            fetcher.download_bytes(fetcher.metadata_base_url + "1.root.json", 1024)
    assert (refused.value.status_code, refused.value.code) == (401, "invalid_license")
    assert seen["Authorization"] == "Bearer TOKEN"
    assert seen["Accept-Encoding"] == "identity"
    assert seen["User-Agent"].startswith("vigil-engine/")


def test_a_body_announced_larger_than_allowed_is_not_read(portal_server, portal):
    token = portal.issue().read_text().strip()
    with PortalTransport(portal_server.base_url, token) as transport:
        fetcher = PortalFetcher(transport)
        with pytest.raises(ResponseTooLargeError, match="announced as"):
            fetcher.download_bytes(fetcher.metadata_base_url + "1.root.json", 10)


def _capture(portal_server):
    seen = {}

    def remember(handler):
        seen["headers"] = dict(handler.headers)
        seen["body"] = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))

    portal_server.on_request = remember
    return seen


def test_a_compressible_report_batch_is_posted_gzipped_with_the_lease(portal_server):
    seen = _capture(portal_server)
    portal_server.tampering.status = 201
    portal_server.tampering.body = b'{"batch_id": "b-1", "accepted": 2}'
    records = [{"day": "2026-12-02", "bundle": "reference-1", "scored": n} for n in range(99)]
    body = json.dumps({"batch_id": "b-1", "records": records}).encode()
    with PortalTransport(portal_server.base_url, "TOKEN") as transport:
        answer = ReportApi(transport, "LEASE").send(USAGE_PATH, body)
    assert answer == {"batch_id": "b-1", "accepted": 2}
    headers = seen["headers"]
    assert (headers["Authorization"], headers[LEASE_HEADER]) == ("Bearer TOKEN", "LEASE")
    assert (headers["Content-Encoding"], headers["Content-Type"]) == ("gzip", "application/json")
    assert gzip.decompress(seen["body"]) == body
    # Same body, same bytes: a batch sent again is the same request.
    assert ReportApi(transport, "LEASE").encode(body) == seen["body"]


def test_a_refused_batch_keeps_the_portals_field_errors_on_one_line(portal_server):
    portal_server.tampering.status = 422
    portal_server.tampering.body = json.dumps(
        {"error": "invalid_batch", "detail": [{"record": 0, "field": "scored", "reason": "<0"}]}
    ).encode()
    with (
        PortalTransport(portal_server.base_url, "TOKEN") as transport,
        pytest.raises(PortalResponseError) as refused,
    ):
        ReportApi(transport, "LEASE").send(USAGE_PATH, b"{}")
    assert (refused.value.status_code, refused.value.code) == (422, "invalid_batch")
    assert refused.value.detail == '[{"record":0,"field":"scored","reason":"<0"}]'


def test_a_policy_answer_that_is_not_a_json_object_is_unusable(portal_server):
    portal_server.tampering.status = 200
    portal_server.tampering.body = b"[true]"
    with (
        PortalTransport(portal_server.base_url, "TOKEN") as transport,
        pytest.raises(PortalConnectionError, match="not a JSON object"),
    ):
        ReportApi(transport, "LEASE").policy()


def test_a_batch_of_compressed_vectors_is_posted_as_it_is(portal_server):
    seen = _capture(portal_server)
    portal_server.tampering.status = 201
    portal_server.tampering.body = b'{"batch_id": "b-2", "accepted": 1}'
    vector = base64.b64encode(random.Random(7).randbytes(3000)).decode()
    body = json.dumps({"batch_id": "b-2", "records": [{"features": {"data": vector}}]}).encode()
    with PortalTransport(portal_server.base_url, "TOKEN") as transport:
        ReportApi(transport, "LEASE").send(FEEDBACK_PATH, body)
    assert "Content-Encoding" not in seen["headers"]
    assert seen["body"] == body


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("Wed, 02 Dec 2026 12:01:30 GMT", 90.0),
        ("Wed, 02 Dec 2026 11:00:00 GMT", 0.0),  # a date past: now
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_is_read_as_seconds_or_an_http_date(header, seconds):
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    assert retry_after_seconds(header, now) == seconds
