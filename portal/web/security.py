"""Cookies, CSRF tokens, rate limits and security headers of the web portal.

CSRF (a signed double-submit token, OWASP's "signed double-submit cookie"):

- Every browser gets a random ``csrf`` cookie (HttpOnly, SameSite=Lax).
- A form's ``csrf_token`` is HMAC-SHA256 over that cookie and the session
  cookie (empty before login), keyed with ``VIGIL_SESSION_SECRET``: another
  site can neither read nor compute it, and signing in or out makes the
  tokens of pages shown before useless.
- ``require_csrf`` runs before every route of the app (an app-wide
  dependency) and refuses any unsafe method without the right token with 403,
  as it refuses a request the browser marks ``Sec-Fetch-Site: cross-site``.
- The engine API (``ENGINE_API_PREFIXES``: ``/api/``, ``/tuf/``) is exempt: its
  routes never read a cookie and authenticate every request with the license
  in the ``Authorization`` header, which a browser never adds to a forged
  cross-site request, so there is no ambient credential to forge a request
  with. Exempt from CSRF is not exempt from authentication: each engine route
  depends on ``portal.web.deps.licensed_engine``.

Cookies carry ``Secure`` and the ``__Host-`` name prefix unless
``VIGIL_SESSION_COOKIE_SECURE=false`` (development over plain http).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
import secrets
import threading
import time
import zlib
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Final

from fastapi import Request
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException

from portal.errors import (
    CsrfError,
    InvalidContentEncodingError,
    RateLimitedError,
    UnsupportedMediaTypeError,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine
    from typing import Any

    from fastapi import Response
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from portal.settings import Settings

SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
ENGINE_API_PREFIXES: Final = ("/api/", "/tuf/")
CSRF_FIELD: Final = "csrf_token"
_SEED: Final = re.compile(r"[A-Za-z0-9_-]{32,64}")

CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


#### Cookies ####


@dataclass(frozen=True)
class CookieNames:
    session: str
    csrf: str
    flash: str

    @classmethod
    def for_settings(cls, settings: Settings) -> CookieNames:
        prefix = "__Host-" if settings.session_cookie_secure else ""
        return cls(
            session=f"{prefix}vigil_session",
            csrf=f"{prefix}vigil_csrf",
            flash=f"{prefix}vigil_flash",
        )


def set_cookie(
    response: Response, settings: Settings, name: str, value: str, *, max_age: int | None
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        secure=settings.session_cookie_secure,
        httponly=True,
        samesite="lax",
    )


def delete_cookie(response: Response, settings: Settings, name: str) -> None:
    response.delete_cookie(
        name, path="/", secure=settings.session_cookie_secure, httponly=True, samesite="lax"
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(settings: Settings, purpose: str, message: str) -> str:
    digest = hmac.new(
        settings.session_key(), f"{purpose}\x00{message}".encode(), hashlib.sha256
    ).digest()
    return _b64(digest)


#### CSRF ####


def is_engine_api(path: str) -> bool:
    """Whether ``path`` belongs to the engines' license-bearer API (no cookies)."""
    return path.startswith(ENGINE_API_PREFIXES)


def csrf_seed(request: Request) -> str:
    """The browser's CSRF cookie value, or a new one the response must set."""
    names: CookieNames = request.app.state.cookie_names
    seed = request.cookies.get(names.csrf, "")
    if _SEED.fullmatch(seed):
        return seed
    new_seed: str | None = getattr(request.state, "new_csrf_seed", None)
    if new_seed is None:
        new_seed = secrets.token_urlsafe(32)
        request.state.new_csrf_seed = new_seed
    return new_seed


def csrf_token(request: Request) -> str:
    settings: Settings = request.app.state.settings
    names: CookieNames = request.app.state.cookie_names
    session_token = request.cookies.get(names.session, "")
    return sign(settings, "csrf", f"{csrf_seed(request)}\x00{session_token}")


def set_new_csrf_cookie(request: Request, response: Response) -> None:
    """Send the CSRF cookie if this request drew a new one."""
    new_seed = getattr(request.state, "new_csrf_seed", None)
    if new_seed is not None:
        set_cookie(
            response,
            request.app.state.settings,
            request.app.state.cookie_names.csrf,
            new_seed,
            max_age=None,
        )


async def require_csrf(request: Request) -> None:
    """Refuse (403) an unsafe request without the CSRF token of this browser's session."""
    if request.method in SAFE_METHODS or is_engine_api(request.url.path):
        return
    if request.headers.get("sec-fetch-site") == "cross-site":
        raise CsrfError("cross-site form submissions are refused")
    names: CookieNames = request.app.state.cookie_names
    seed = request.cookies.get(names.csrf, "")
    form = await request.form()
    submitted = form.get(CSRF_FIELD)
    if not _SEED.fullmatch(seed) or not isinstance(submitted, str):
        raise CsrfError("the form has expired or was not sent from this site: reload and retry")
    if not hmac.compare_digest(submitted.encode(), csrf_token(request).encode()):
        raise CsrfError("the form has expired or was not sent from this site: reload and retry")


#### Flash messages ####


def encode_flash(settings: Settings, messages: list[dict[str, str]]) -> str:
    body = _b64(json.dumps(messages, separators=(",", ":")).encode())
    return f"{body}.{sign(settings, 'flash', body)}"


def decode_flash(settings: Settings, value: str) -> list[dict[str, str]]:
    body, _, signature = value.partition(".")
    if not body or not hmac.compare_digest(signature, sign(settings, "flash", body)):
        return []
    try:
        messages = json.loads(_unb64(body))
    except (ValueError, UnicodeError):
        return []
    if not isinstance(messages, list):
        return []
    return [
        {"category": str(item.get("category", "info")), "text": str(item.get("text", ""))}
        for item in messages
        if isinstance(item, dict)
    ]


#### Rate limits ####


@dataclass
class RateLimiter:
    """At most ``limit`` hits per key in any ``window`` seconds (sliding window),
    in this process's memory: a portal run as several processes limits each.
    """

    limit: int
    window: float
    clock: Callable[[], float] = time.monotonic
    max_keys: int = 100_000
    _hits: dict[str, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def hit(self, key: str) -> int | None:
        """Count a hit; None if allowed, else the seconds until one would be."""
        now = self.clock()
        with self._lock:
            if len(self._hits) >= self.max_keys:
                self._forget_idle(now)
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return max(1, math.ceil(hits[0] + self.window - now))
            hits.append(now)
            return None

    def _forget_idle(self, now: float) -> None:
        idle = [
            key for key, hits in self._hits.items() if not hits or hits[-1] <= now - self.window
        ]
        for key in idle:
            del self._hits[key]
        if len(self._hits) >= self.max_keys:
            self._hits.clear()

    def reset(self) -> None:
        with self._lock:
            self._hits.clear()


def client_address(request: Request) -> str:
    """The client's address (uvicorn puts a trusted proxy's X-Forwarded-For here)."""
    return request.client.host if request.client else "unknown"


def rate_limit(name: str) -> Callable[[Request], None]:
    """A dependency that counts the request against the app's limiter ``name``."""

    def dependency(request: Request) -> None:
        limiter: RateLimiter = request.app.state.rate_limiters[name]
        retry_after = limiter.hit(client_address(request))
        if retry_after is not None:
            raise RateLimitedError(
                "Too many attempts from your address. Please wait and try again.",
                retry_after=retry_after,
            )

    return dependency


#### Request bodies ####

API_MAX_BODY_BYTES: Final = 64 * 1024
# Usage and feedback batches (docs/feedback.md): up to 1000 feedback records of a few
# KiB each. The limit holds for the body as sent and again for it decompressed.
REPORT_MAX_BODY_BYTES: Final = 8 * 1024 * 1024
_GZIP_WBITS: Final = 16 + zlib.MAX_WBITS
_GUNZIP_INLINE_BYTES: Final = 16 * 1024


def _too_large(limit: int, what: str = "request bodies") -> HTTPException:
    return HTTPException(413, f"{what} are limited to {limit} bytes")


def _limited_receive(receive: Receive, limit: int) -> Receive:
    received = 0

    async def limited() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise _too_large(limit)
        return message

    return limited


def _gunzipping_receive(receive: Receive, limit: int) -> Receive:
    """The body decompressed as it arrives, never more than ``limit`` bytes of it:
    decompression stops one byte past the limit (413), so a gzip bomb costs at most
    ``limit`` bytes of memory. Concatenated gzip members are one body (RFC 1952).
    """
    decompressor = zlib.decompressobj(_GZIP_WBITS)
    produced = 0

    async def gunzipped() -> Message:
        nonlocal decompressor, produced
        message = await receive()
        if message["type"] != "http.request":
            return message
        data: bytes = message.get("body", b"")
        more_body: bool = message.get("more_body", False)
        parts: list[bytes] = []
        try:
            while data:
                if decompressor.eof:
                    decompressor = zlib.decompressobj(_GZIP_WBITS)
                bound = limit - produced + 1
                if len(data) >= _GUNZIP_INLINE_BYTES:
                    # zlib releases the GIL: a big chunk inflates in a worker thread
                    # while the event loop serves other requests.
                    plain = await run_in_threadpool(decompressor.decompress, data, bound)
                else:
                    plain = decompressor.decompress(data, bound)
                produced += len(plain)
                if produced > limit:
                    raise _too_large(limit, "decompressed request bodies")
                parts.append(plain)
                # Output below the bound means the input was consumed, up to the end
                # of a member: what follows it (if anything) is the next member.
                data = decompressor.unused_data if decompressor.eof else b""
        except zlib.error:
            raise InvalidContentEncodingError("the body is not valid gzip data") from None
        if not more_body and not decompressor.eof:
            raise InvalidContentEncodingError("the gzip body is truncated")
        return {"type": "http.request", "body": b"".join(parts), "more_body": more_body}

    return gunzipped


class BodyLimitedRoute(APIRoute):
    """A route that reads at most ``max_body_bytes`` (``API_MAX_BODY_BYTES``) of a
    request body: a larger ``Content-Length`` is refused (413) before anything is
    read, a longer body without one as soon as it passes the limit, so nothing
    larger is ever held in memory. The 413 goes through the app's error mapping
    (unlike Starlette's ``max_body_size``, which answers in plain text).

    With ``accept_gzip``, ``Content-Encoding`` must be ``gzip`` or ``identity``
    (else 415): a gzip body is decompressed on the way in, bounded by the same
    limit (413 beyond it, 400 ``invalid_content_encoding`` for data that is not
    gzip), and the route sees the plain body.
    """

    max_body_bytes: ClassVar[int] = API_MAX_BODY_BYTES
    accept_gzip: ClassVar[bool] = False

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        limit = self.max_body_bytes
        accept_gzip = self.accept_gzip

        async def limited(request: Request) -> Response:
            declared = request.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise _too_large(limit)
            receive = _limited_receive(request.receive, limit)
            if accept_gzip:
                encoding = request.headers.get("content-encoding", "identity").strip().lower()
                if encoding == "gzip":
                    receive = _gunzipping_receive(receive, limit)
                elif encoding not in {"", "identity"}:
                    raise UnsupportedMediaTypeError("Content-Encoding must be gzip or identity")
            return await handler(Request(request.scope, receive))

        return limited


class ReportBodyRoute(BodyLimitedRoute):
    """The engines' usage and feedback routes: bodies of up to
    ``REPORT_MAX_BODY_BYTES`` (8 MiB, also once decompressed), optionally gzipped.
    """

    max_body_bytes: ClassVar[int] = REPORT_MAX_BODY_BYTES
    accept_gzip: ClassVar[bool] = True


#### Headers ####


class SecurityHeadersMiddleware:
    """Adds the security headers to every response (pure ASGI, so streaming works)."""

    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                # Links carry secret tokens in their path: never pass them on.
                headers.setdefault("Referrer-Policy", "no-referrer")
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
                headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
                if not path.startswith("/static/"):
                    headers.setdefault("Cache-Control", "no-store")
                if self.hsts:
                    headers.setdefault("Strict-Transport-Security", "max-age=31536000")
            await send(message)

        await self.app(scope, receive, send_with_headers)
