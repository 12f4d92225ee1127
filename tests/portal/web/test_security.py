"""Who may use which route: every administrator route needs a session, every
form needs its CSRF token, logins and applications are rate limited, and every
response carries the security headers.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy.orm import sessionmaker

from portal.applications import service as application_service
from portal.db import make_engine
from portal.settings import Settings
from portal.web.app import create_app
from tests.portal.support import csrf_token, post_form

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from starlette.routing import BaseRoute

    from tests.portal.support import AdminAccount

# The only /admin route without a session: the sign-in form itself.
PUBLIC_ADMIN_ROUTES = {("GET", "/admin/login"), ("POST", "/admin/login")}
SAMPLE_PATH_VALUES = {
    "application_id": "1",
    "license_id": "00000000-0000-4000-8000-000000000000",
    "activation_id": "00000000-0000-4000-8000-000000000001",
    "organisation_id": "00000000-0000-4000-8000-000000000002",
    "filename": "timestamp.json",
    "path": "licensing/" + "0" * 64 + ".keys.json",
    "token": "AAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB",
}


def _walk(routes: Iterable[BaseRoute], prefix: str = "") -> Iterator[tuple[str, str]]:
    for route in routes:
        included = getattr(route, "original_router", None)  # routers FastAPI includes lazily
        if included is not None:
            yield from _walk(included.routes, prefix + route.include_context.prefix)  # type: ignore[attr-defined]
        elif isinstance(route, APIRoute):
            for method in sorted(route.methods):
                yield method, prefix + route.path


def app_routes() -> list[tuple[str, str]]:
    settings = Settings(environment="development", session_cookie_secure=False)
    return sorted(set(_walk(create_app(settings, session_factory=object()).routes)))  # type: ignore[arg-type]


ROUTES = app_routes()


def _concrete(path: str) -> str:
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda match: SAMPLE_PATH_VALUES[match.group(1)], path)


def _is_engine_api(path: str) -> bool:
    return path.startswith(("/api/", "/tuf/"))


def test_the_walk_finds_the_spec_routes() -> None:
    for expected in [
        ("GET", "/apply"),
        ("POST", "/apply"),
        ("GET", "/applications/status/{token}"),
        ("GET", "/admin/applications"),
        ("POST", "/admin/applications/{application_id}/approve"),
        ("POST", "/admin/applications/{application_id}/decline"),
        ("POST", "/admin/applications/{application_id}/request-information"),
        ("POST", "/admin/applications/{application_id}/defer"),
        ("GET", "/admin/licenses"),
        ("POST", "/admin/licenses/{license_id}/suspend"),
        ("POST", "/admin/licenses/{license_id}/reinstate"),
        ("POST", "/admin/licenses/{license_id}/revoke"),
        ("POST", "/admin/licenses/{license_id}/renew"),
        ("GET", "/admin/audit"),
        ("GET", "/licenses/download/{token}"),
        ("GET", "/healthz"),
        ("GET", "/tuf/metadata/{filename}"),
        ("GET", "/tuf/targets/{path:path}"),
        ("POST", "/api/v1/activations"),
        ("POST", "/api/v1/leases/renew"),
        ("GET", "/api/v1/feedback/policy"),
        ("POST", "/api/v1/usage"),
        ("POST", "/api/v1/feedback"),
    ]:
        assert expected in ROUTES


@pytest.mark.parametrize(
    ("method", "path"),
    [
        route
        for route in ROUTES
        if route[1].startswith("/admin") and route not in PUBLIC_ADMIN_ROUTES
    ],
)
def test_admin_routes_need_a_session(client: TestClient, method: str, path: str) -> None:
    data: dict[str, Any] | None = None
    if method == "POST":
        # With a valid CSRF token, so that only the missing session can refuse it.
        data = {"csrf_token": csrf_token(client.get("/admin/login"))}
    response = client.request(method, _concrete(path), data=data)
    assert response.status_code in {303, 401, 403}, response.text[:300]
    if response.status_code == 303:
        assert response.headers["location"].startswith("/admin/login")


@pytest.mark.parametrize(
    ("method", "path"),
    [route for route in ROUTES if route[0] == "POST" and not _is_engine_api(route[1])],
)
def test_every_post_without_csrf_is_refused(
    admin_client: TestClient, method: str, path: str
) -> None:
    # Even signed in: the session cookie alone never authorises a form.
    response = admin_client.request(method, _concrete(path), data={"anything": "x"})
    assert response.status_code == 403
    assert "form has expired" in response.text


@pytest.mark.parametrize(
    ("method", "path"), [route for route in ROUTES if _is_engine_api(route[1])]
)
def test_every_engine_route_needs_a_license_even_from_a_signed_in_browser(
    admin_client: TestClient, method: str, path: str
) -> None:
    # Exempt from CSRF (no cookie is ever read there), never from authentication.
    response = admin_client.request(method, _concrete(path), json={"engine_id": "x"})
    assert response.status_code == 401
    assert response.json()["error"] == "missing_license"
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_a_csrf_token_of_another_browser_is_refused(
    make_client: Callable[..., TestClient],
) -> None:
    alice, mallory = make_client(), make_client()
    token = csrf_token(mallory.get("/apply"))
    alice.get("/apply")
    assert alice.post("/apply", data={"csrf_token": token}).status_code == 403


def test_cross_site_posts_are_refused(client: TestClient) -> None:
    token = csrf_token(client.get("/apply"))
    response = client.post(
        "/apply", data={"csrf_token": token}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert response.status_code == 403


def test_signing_in_makes_earlier_form_tokens_useless(
    client: TestClient, admin_account: AdminAccount
) -> None:
    token_before = csrf_token(client.get("/admin/login"))
    admin_account.sign_in(client)
    response = client.post(
        "/admin/admins/invite", data={"email": "x@y.example", "csrf_token": token_before}
    )
    assert response.status_code == 403


def test_pages_carry_the_security_headers(client: TestClient) -> None:
    for path in ("/", "/apply", "/admin/login", "/no-such-page", "/healthz"):
        headers = client.get(path).headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "script-src" not in headers["content-security-policy"]  # default-src 'none'
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["cache-control"] == "no-store"


def test_https_cookies_are_secure_httponly_lax_and_expire(
    make_client: Callable[..., TestClient], admin_account: AdminAccount
) -> None:
    client = make_client(base_url="https://testserver", session_cookie_secure=True)
    page = client.get("/admin/login")
    assert "__Host-vigil_csrf=" in page.headers["set-cookie"]
    response = admin_account.sign_in(client)
    cookie = next(
        value for value in response.headers.get_list("set-cookie") if "vigil_session" in value
    )
    assert cookie.startswith("__Host-vigil_session=")
    lowered = cookie.lower()
    for attribute in ("secure", "httponly", "samesite=lax", "path=/", "max-age=28800"):
        assert attribute in lowered
    assert client.get("/admin/applications").status_code == 200
    assert "strict-transport-security" in page.headers


def test_apply_is_rate_limited_per_address(make_client: Callable[..., TestClient]) -> None:
    client = make_client(apply_rate_limit=2)
    for _ in range(2):
        assert post_form(client, "/apply", "/apply", {}).status_code == 422
    limited = post_form(client, "/apply", "/apply", {})
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) > 0
    assert "Too many attempts" in limited.text
    assert "<h1>Too many requests</h1>" in limited.text


def test_login_is_rate_limited_per_address(make_client: Callable[..., TestClient]) -> None:
    client = make_client(login_rate_limit=3)
    attempt = {"email": "nobody@portal.example", "password": "wrong password!", "totp_code": "1"}
    statuses = [
        post_form(client, "/admin/login", "/admin/login", attempt).status_code for _ in range(4)
    ]
    assert statuses == [422, 422, 422, 429]


def test_healthz_reports_the_database_as_json(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


def test_healthz_says_when_the_database_is_unreachable(initialised: Settings) -> None:
    broken = make_engine(
        "postgresql+psycopg://nobody@127.0.0.1:1/none", connect_args={"connect_timeout": 1}
    )
    client = TestClient(create_app(initialised, session_factory=sessionmaker(bind=broken)))
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["database"] == "unreachable"


def test_errors_are_html_pages_outside_the_api(client: TestClient) -> None:
    missing = client.get("/no-such-page")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("text/html")
    assert "<h1>Page not found</h1>" in missing.text
    unusable = client.get(_concrete("/applications/status/{token}"))
    assert unusable.status_code == 410
    assert "expired or been used" in unusable.text


def test_errors_are_json_under_healthz_and_api(client: TestClient) -> None:
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] == "not_found"


def test_unexpected_errors_show_a_500_page_without_details(
    make_client: Callable[..., TestClient],
    admin_account: AdminAccount,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def explode(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(application_service, "status_counts", explode)
    client = make_client(raise_server_exceptions=False)
    admin_account.sign_in(client)
    response = client.get("/admin/applications")
    assert response.status_code == 500
    assert "<h1>Something went wrong</h1>" in response.text
    assert "secret detail" not in response.text
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
