"""Talking to the portal: the TUF fetcher and the engine API client (SPEC §1, §5 routes).

Every request carries the license as ``Authorization: Bearer <token>``; nothing else
identifies the engine to the portal. The rules enforced here, on every response:

- Time: a connect timeout, a read timeout between received bytes, and a total deadline
  per response, so neither a dead portal nor one trickling bytes holds a scheduler's run.
- Size: a response announcing (``Content-Length``) or delivering more bytes than the
  caller allows is refused before it is read, or as soon as the limit is passed. For TUF
  downloads the limit is the one python-tuf gives for that file (its signed length, or
  ``LicensingConfig.max_metadata_bytes``); otherwise ``RemoteSettings.max_response_bytes``.
- Bytes are taken as sent: ``Accept-Encoding: identity`` and no decoding, so a
  compressed answer can neither expand past the limits nor differ from the signed hashes.
- No redirects: a bearer token is never replayed to another address. A 3xx answer is
  reported with its ``Location`` so the operator can fix ``--portal``.
- Error answers are JSON ``{"error": code, "detail": text}``; the code and a cleaned,
  shortened detail are kept (``PortalResponseError``). The portal's text never reaches the
  terminal with control characters in it.
- Proxies come from the usual ``*_proxy`` environment variables (``no_proxy`` honoured);
  loopback addresses are always reached directly.

``engine_error_for`` turns any of these, raised directly or found in the cause chain of a
``licensing`` error (python-tuf wraps fetcher errors), into the one engine error of SPEC §6:
license refusals exit 3, everything that keeps the portal from answering exits 5.
"""

from __future__ import annotations

import email.utils
import ipaddress
import json
import socket
import time
import urllib.request
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any, Final, Self, TypeVar
from urllib.parse import urlsplit

import urllib3
from tuf.api import exceptions as tuf_exceptions
from tuf.ngclient.fetcher import FetcherInterface

from scoring_engine import __version__
from scoring_engine.errors import VigilError
from scoring_engine.trust import LIMITS, LicenseCheckError, PortalUnreachableError

USER_AGENT: Final = f"vigil-engine/{__version__}"
METADATA_PATH: Final = "/tuf/metadata/"
TARGETS_PATH: Final = "/tuf/targets/"
ACTIVATIONS_PATH: Final = "/api/v1/activations"
RENEW_PATH: Final = "/api/v1/leases/renew"
FEEDBACK_POLICY_PATH: Final = "/api/v1/feedback/policy"
USAGE_PATH: Final = "/api/v1/usage"
FEEDBACK_PATH: Final = "/api/v1/feedback"
LEASE_HEADER: Final = "X-Vigil-Lease"
GZIP_LEVEL: Final = 1
_GZIP_WBITS: Final = 16 + 15  # a gzip member around a deflate stream with a 32 KiB window
_GZIP_MAGIC: Final = b"\x1f\x8b"
_GZIP_SAMPLE_BYTES: Final = 64 * 1024
_GZIP_WORTH_RATIO: Final = 2 / 3

# Error bodies and API answers are small JSON documents; a lease is a short JWS.
_MAX_ERROR_BODY: Final = 16 * 1024
_MAX_API_BODY: Final = 64 * 1024
_MAX_DETAIL: Final = 300
# The answers whose ``Retry-After`` says when to try again (RFC 9110 §10.2.3).
_RETRY_AFTER_STATUSES: Final = frozenset({429, 503})
_CHUNK: Final = 64 * 1024
_REDIRECTS: Final = range(300, 400)
_GET_OK: Final = frozenset({200})
_POST_OK: Final = frozenset({200, 201})
_E = TypeVar("_E", bound=BaseException)

# The portal's refusal codes (the portal contract) and what the engine makes of them.
LICENSE_REVOKED: Final = "license_revoked"
LICENSE_SUSPENDED: Final = "license_suspended"
LICENSE_EXPIRED: Final = "license_expired"
LICENSE_NOT_YET_VALID: Final = "license_not_yet_valid"
INVALID_LICENSE: Final = "invalid_license"
MISSING_LICENSE: Final = "missing_license"
CHANNEL_NOT_ENTITLED: Final = "channel_not_entitled"
MAX_ENGINES_REACHED: Final = "max_engines_reached"
NOT_ACTIVATED: Final = "not_activated"
# Refusals that stop scoring until the portal accepts the license again (suspended) or a
# new license is installed (revoked).
STOPPING_REFUSALS: Final = frozenset({LICENSE_REVOKED, LICENSE_SUSPENDED})


@dataclass(frozen=True)
class RemoteSettings:
    """Time and size bounds of every request to the portal.

    Attributes:
        connect_timeout: Seconds to establish a connection.
        read_timeout: Seconds the portal may stay silent while answering.
        total_timeout: Seconds one response may take in all (a bundle at a slow rate).
        connect_retries: Extra connection attempts before the portal counts as unreachable.
        max_response_bytes: Largest body accepted when the caller names no smaller limit:
            one bundle (``LicensingConfig.max_bundle_bytes``).
    """

    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    total_timeout: float = 600.0
    connect_retries: int = 1
    max_response_bytes: int = max(LIMITS.max_bundle_bytes, LIMITS.max_metadata_bytes)

    @classmethod
    def with_timeout(cls, seconds: float | None) -> RemoteSettings:
        """Settings whose connect and read timeouts are ``seconds`` (config ``portal_timeout``)."""
        if seconds is None:
            return cls()
        return cls(connect_timeout=seconds, read_timeout=seconds)


#### Errors seen on the wire ####


def _clean(text: str) -> str:
    """The portal's text as one short, printable line."""
    printable = "".join(char if char.isprintable() else " " for char in text)
    collapsed = " ".join(printable.split())
    if len(collapsed) > _MAX_DETAIL:
        collapsed = collapsed[: _MAX_DETAIL - 1] + "…"
    return collapsed


class PortalResponseError(tuf_exceptions.DownloadHTTPError):
    """The portal answered with an error status (and, usually, a JSON error code).

    A ``DownloadHTTPError`` so python-tuf handles it as an HTTP answer (a 403 or 404 for
    the next root version means "no newer root") and passes it through unchanged.
    """

    def __init__(
        self,
        url: str,
        status_code: int,
        code: str | None,
        detail: str | None,
        location: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.url = url
        self.code = code
        self.detail = detail
        self.location = location
        # Seconds the portal asked to wait (``Retry-After`` of a 429 or 503), if it did.
        self.retry_after = retry_after
        summary = f"HTTP {status_code}" + (f" {code}" if code else "")
        super().__init__(
            f"{url}: {summary}" + (f": {detail}" if detail else "") + self.wait_note,
            status_code,
        )

    @property
    def wait_note(self) -> str:
        """`` (retry after N s)`` when the portal said how long to wait, else empty."""
        return f" (retry after {self.retry_after:g} s)" if self.retry_after is not None else ""


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` (RFC 9110 §10.2.3) in seconds from now: delay-seconds or an
    HTTP-date (a date past is 0); None if absent or neither."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": a time in UTC from a source that would not say
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class PortalConnectionError(tuf_exceptions.DownloadError):
    """No usable answer: connection refused or reset, DNS, TLS, a timeout, or an API
    answer that is not the JSON the contract describes.
    """


class PortalTimeoutError(tuf_exceptions.SlowRetrievalError, PortalConnectionError):
    """The portal did not answer, or answered too slowly, within the timeouts."""


class ResponseTooLargeError(tuf_exceptions.DownloadLengthMismatchError):
    """The portal announced or sent more bytes than allowed for this request."""


#### Transport ####


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_private_channel(portal_url: str) -> bool:
    """Whether the bearer token is safe on the way: https, or plain http to this machine."""
    parts = urlsplit(portal_url)
    return parts.scheme == "https" or _is_loopback(parts.hostname or "")


def _proxy_for(scheme: str, host: str) -> str | None:
    """The proxy of the ``*_proxy`` variables for ``host``, as python-tuf's fetcher picks it."""
    if _is_loopback(host):
        return None
    proxies = urllib.request.getproxies()
    for entry in proxies.get("no", "").replace(" ", "").split(","):
        bypass = entry.lstrip(".")
        if bypass and (bypass in {"*", host} or host.endswith(f".{bypass}")):
            return None
    return proxies.get(scheme) or proxies.get("all")


# Connections kept open to the portal: ``report`` sends a few batches at once.
_POOL_CONNECTIONS: Final = 4


def _pool_manager(portal_url: str) -> urllib3.PoolManager:
    parts = urlsplit(portal_url)
    proxy = _proxy_for(parts.scheme, parts.hostname or "")
    if proxy:
        return urllib3.ProxyManager(proxy, maxsize=_POOL_CONNECTIONS)
    return urllib3.PoolManager(maxsize=_POOL_CONNECTIONS)


def _decode_error(data: bytes) -> tuple[str | None, str | None]:
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        text = data.decode("utf-8", errors="replace").strip()
        return None, _clean(text) if text else None
    if not isinstance(document, dict):
        return None, None
    code = document.get("error")
    detail = document.get("detail")
    if isinstance(detail, list | dict):
        # Field errors of a refused batch (``invalid_batch``): kept, as one short line.
        detail = json.dumps(detail, separators=(",", ":"))
    return (
        _clean(code) if isinstance(code, str) and code else None,
        _clean(detail) if isinstance(detail, str) and detail else None,
    )


class PortalTransport:
    """One portal, one license: the bearer requests of ``PortalFetcher`` and ``PortalApi``.

    Args:
        portal_url: The portal's base URL (``https://portal.example``), no trailing slash.
        token: The license token, sent as the bearer credential.
        settings: Time and size bounds.
    """

    def __init__(self, portal_url: str, token: str, settings: RemoteSettings | None = None) -> None:
        self.portal_url = portal_url.rstrip("/")
        self.settings = settings or RemoteSettings()
        self._headers = {
            "Authorization": f"Bearer {token}",
            "User-Agent": USER_AGENT,
            "Accept-Encoding": "identity",
        }
        self._pool = _pool_manager(self.portal_url)

    def url(self, path: str) -> str:
        return self.portal_url + path

    def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        max_bytes: int | None = None,
        success: frozenset[int] = _GET_OK,
        extra_headers: dict[str, str] | None = None,
    ) -> tuple[urllib3.BaseHTTPResponse, int]:
        """Send a request; return the open response (a ``success`` status) and its limit.

        Raises:
            PortalConnectionError, PortalTimeoutError: No answer.
            PortalResponseError: An error status (the body is read, bounded, and closed).
            ResponseTooLargeError: ``Content-Length`` is over the limit.
        """
        settings = self.settings
        headers = dict(self._headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        if extra_headers:
            headers.update(extra_headers)
        try:
            response = self._pool.request(
                method,
                url,
                body=body,
                headers=headers,
                preload_content=False,
                decode_content=False,
                redirect=False,
                retries=urllib3.Retry(
                    total=None,
                    connect=settings.connect_retries,
                    read=0,
                    redirect=0,
                    status=0,
                    other=0,
                    backoff_factor=0.1,
                    raise_on_redirect=False,
                ),
                timeout=urllib3.Timeout(
                    connect=settings.connect_timeout, read=settings.read_timeout
                ),
            )
        except urllib3.exceptions.HTTPError as error:
            raise _connection_error(url, error) from error
        limit = settings.max_response_bytes if max_bytes is None else max_bytes
        if response.status not in success:
            raise self._error_answer(url, response)
        announced = response.headers.get("Content-Length")
        if announced is not None and announced.isdigit() and int(announced) > limit:
            _discard(response)
            raise ResponseTooLargeError(
                f"{urlsplit(url).path} announced as {int(announced)} bytes, more than the "
                f"{limit} allowed"
            )
        return response, limit

    def _error_answer(self, url: str, response: urllib3.BaseHTTPResponse) -> PortalResponseError:
        try:
            data = response.read(_MAX_ERROR_BODY, decode_content=False)
        except urllib3.exceptions.HTTPError:
            data = b""
        finally:
            _discard(response)
        code, detail = _decode_error(data)
        location = None
        if response.status in _REDIRECTS:
            location = _clean(response.headers.get("Location") or "") or None
        retry_after = None
        if response.status in _RETRY_AFTER_STATUSES:
            retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        return PortalResponseError(url, response.status, code, detail, location, retry_after)

    def stream(self, url: str, response: urllib3.BaseHTTPResponse, limit: int) -> Iterator[bytes]:
        """The body in chunks, within the limit and the total deadline."""
        deadline = time.monotonic() + self.settings.total_timeout
        received = 0
        complete = False
        try:
            while True:
                try:
                    chunk = response.read(_CHUNK, decode_content=False)
                except urllib3.exceptions.HTTPError as error:
                    raise _connection_error(url, error) from error
                if not chunk:
                    complete = True
                    return
                received += len(chunk)
                if received > limit:
                    raise ResponseTooLargeError(
                        f"{urlsplit(url).path} ran past the {limit} bytes allowed"
                    )
                if time.monotonic() > deadline:
                    raise PortalTimeoutError(
                        f"{url}: not received within {self.settings.total_timeout:.0f} s"
                    )
                yield chunk
        finally:
            if complete:
                response.release_conn()
            else:
                _discard(response)

    def post(
        self,
        url: str,
        body: bytes,
        *,
        max_bytes: int,
        extra_headers: dict[str, str] | None = None,
    ) -> bytes:
        """POST ``body`` (JSON) and return the whole answer (200 or 201)."""
        response, limit = self.request(
            "POST",
            url,
            body=body,
            max_bytes=max_bytes,
            success=_POST_OK,
            extra_headers=extra_headers,
        )
        return b"".join(self.stream(url, response, limit))

    def get(
        self, url: str, *, max_bytes: int, extra_headers: dict[str, str] | None = None
    ) -> bytes:
        """GET ``url`` and return the whole answer (200)."""
        response, limit = self.request("GET", url, max_bytes=max_bytes, extra_headers=extra_headers)
        return b"".join(self.stream(url, response, limit))

    def close(self) -> None:
        """Close every connection to the portal."""
        self._pool.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _discard(response: urllib3.BaseHTTPResponse) -> None:
    """Drop a response whose body is not read to the end, with its connection."""
    response.close()
    response.release_conn()


def _connection_error(url: str, error: urllib3.exceptions.HTTPError) -> PortalConnectionError:
    reason: BaseException = error
    if isinstance(error, urllib3.exceptions.MaxRetryError) and error.reason is not None:
        reason = error.reason
    host = urlsplit(url).netloc
    # urllib3 derives NewConnectionError from ConnectTimeoutError: test it first.
    if isinstance(reason, urllib3.exceptions.NameResolutionError):
        return PortalConnectionError(f"cannot resolve {host}")
    if isinstance(reason, urllib3.exceptions.NewConnectionError | ConnectionError):
        return PortalConnectionError(f"cannot connect to {host} (connection refused or down)")
    if isinstance(reason, urllib3.exceptions.TimeoutError):
        return PortalTimeoutError(f"{host} did not answer within the timeout")
    if isinstance(reason, urllib3.exceptions.SSLError):
        return PortalConnectionError(f"TLS with {host} failed: {_clean(str(reason))}")
    return PortalConnectionError(f"{host}: {_clean(str(reason))}")


#### TUF ####


class PortalFetcher(FetcherInterface):
    """python-tuf's downloads from ``{portal}/tuf/``, with the license as bearer.

    python-tuf gives ``download_file`` the most bytes it accepts for each file; that
    limit is applied to ``Content-Length`` before the body is read.
    """

    def __init__(self, transport: PortalTransport) -> None:
        self._transport = transport
        self._limit: int | None = None

    @property
    def metadata_base_url(self) -> str:
        return self._transport.url(METADATA_PATH)

    @property
    def target_base_url(self) -> str:
        return self._transport.url(TARGETS_PATH)

    @contextmanager
    def download_file(self, url: str, max_length: int) -> Iterator[IO[bytes]]:
        self._limit = max_length
        try:
            with super().download_file(url, max_length) as handle:
                yield handle
        finally:
            self._limit = None

    def _fetch(self, url: str) -> Iterator[bytes]:
        response, limit = self._transport.request("GET", url, max_bytes=self._limit)
        return self._transport.stream(url, response, limit)


#### Engine API ####


@dataclass(frozen=True)
class LeaseGrant:
    """The portal's answer to an activation or a renewal."""

    activation_id: str | None
    lease: str
    lease_expires_at: datetime


def _grant(document: Any, url: str) -> LeaseGrant:
    if not isinstance(document, dict):
        raise PortalConnectionError(f"{url}: the portal's answer is not a JSON object")
    lease = document.get("lease")
    expires = document.get("lease_expires_at")
    activation_id = document.get("activation_id")
    if not isinstance(lease, str) or not lease or len(lease) > LIMITS.max_token_bytes:
        raise PortalConnectionError(f"{url}: the portal's answer holds no usable lease")
    try:
        expires_at = datetime.fromisoformat(str(expires))
    except ValueError:
        raise PortalConnectionError(f"{url}: lease_expires_at is not an ISO 8601 time") from None
    if expires_at.tzinfo is None:
        raise PortalConnectionError(f"{url}: lease_expires_at has no time zone")
    if activation_id is not None and not isinstance(activation_id, str | int):
        raise PortalConnectionError(f"{url}: activation_id is not a string")
    return LeaseGrant(
        activation_id=None if activation_id is None else str(activation_id),
        lease=lease.strip(),
        lease_expires_at=expires_at,
    )


class PortalApi:
    """``/api/v1``: activating this engine (a seat of the license) and renewing its lease."""

    def __init__(self, transport: PortalTransport) -> None:
        self._transport = transport

    def _post(self, path: str, document: dict[str, Any]) -> LeaseGrant:
        url = self._transport.url(path)
        try:
            data = self._transport.post(
                url, json.dumps(document).encode("utf-8"), max_bytes=_MAX_API_BODY
            )
        except ResponseTooLargeError as error:
            raise PortalConnectionError(f"unusable answer: {error}") from error
        try:
            answer = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise PortalConnectionError(f"{url}: the portal's answer is not JSON") from None
        return _grant(answer, url)

    def activate(self, engine_id: str, engine_version: str = __version__) -> LeaseGrant:
        """``POST /api/v1/activations``: take (or confirm) this engine's seat."""
        return self._post(
            ACTIVATIONS_PATH,
            {
                "engine_id": engine_id,
                "hostname": socket.gethostname(),
                "engine_version": engine_version,
            },
        )

    def renew(self, engine_id: str, engine_version: str = __version__) -> LeaseGrant:
        """``POST /api/v1/leases/renew``: extend the lease of an activated engine.

        The host name and version ride along (the portal shows them to administrators).
        """
        return self._post(
            RENEW_PATH,
            {
                "engine_id": engine_id,
                "hostname": socket.gethostname(),
                "engine_version": engine_version,
            },
        )


class ReportApi:
    """``/api/v1`` usage and feedback (docs/feedback.md): the lease rides on every request.

    Bodies are gzipped (``Content-Encoding: gzip``). Most of a feedback body is feature
    vectors, base64 of zlib data: string matching finds nothing in it, Huffman coding
    takes back the quarter base64 added. So the deflate stream is Huffman-only, about four
    times faster than level 1 for a size within 2 % of level 6. zlib writes the gzip header
    without a time, so a batch sent again is the same bytes. ``encode`` may run in another
    thread while a batch is in flight.
    """

    def __init__(
        self, transport: PortalTransport, lease: str, *, gzip_level: int = GZIP_LEVEL
    ) -> None:
        self._transport = transport
        self._headers = {LEASE_HEADER: lease}
        self._gzip_level = gzip_level

    def _answer(self, url: str, data: bytes) -> dict[str, Any]:
        try:
            answer = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise PortalConnectionError(f"{url}: the portal's answer is not JSON") from None
        if not isinstance(answer, dict):
            raise PortalConnectionError(f"{url}: the portal's answer is not a JSON object")
        return answer

    def policy(self) -> dict[str, Any]:
        """``GET /api/v1/feedback/policy``: text sharing and the batch limits."""
        url = self._transport.url(FEEDBACK_POLICY_PATH)
        try:
            data = self._transport.get(url, max_bytes=_MAX_API_BODY, extra_headers=self._headers)
        except ResponseTooLargeError as error:
            raise PortalConnectionError(f"unusable answer: {error}") from error
        return self._answer(url, data)

    def encode(self, body: bytes) -> bytes:
        """``body`` as ``send`` posts it: gzipped when that makes it a third smaller.

        Feedback bodies are mostly base64 of zlib-compressed vectors, which gzip shrinks
        by a quarter at some 20 ms of CPU per batch on each side; they go as they are. A
        sample of the body decides, so deciding costs a few percent of compressing.
        """
        sample = body[:_GZIP_SAMPLE_BYTES]
        if len(self._gzip(sample)) > len(sample) * _GZIP_WORTH_RATIO:
            return body
        return self._gzip(body)

    def _gzip(self, body: bytes) -> bytes:
        compressor = zlib.compressobj(
            self._gzip_level, zlib.DEFLATED, _GZIP_WBITS, 8, zlib.Z_HUFFMAN_ONLY
        )
        return compressor.compress(body) + compressor.flush()

    def send(self, path: str, body: bytes, *, encoded: bytes | None = None) -> dict[str, Any]:
        """POST one batch body (the exact JSON stored in the outbox), gzipped if it pays.

        ``encoded``: ``encode(body)``, if the caller already has it.
        """
        url = self._transport.url(path)
        posted = self.encode(body) if encoded is None else encoded
        # A JSON body never starts with gzip's magic bytes.
        gzipped = posted[:2] == _GZIP_MAGIC
        headers = {**self._headers, **({"Content-Encoding": "gzip"} if gzipped else {})}
        try:
            data = self._transport.post(
                url,
                posted,
                max_bytes=_MAX_API_BODY,
                extra_headers=headers,
            )
        except ResponseTooLargeError as error:
            raise PortalConnectionError(f"unusable answer: {error}") from error
        return self._answer(url, data)


#### Engine errors ####


class PortalRefusedError(LicenseCheckError):
    """The portal refused this engine's license, channel or seat (exit 3)."""

    def __init__(self, message: str, code: str | None, detail: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.detail = detail


def find_in_chain(error: BaseException, kind: type[_E]) -> _E | None:
    """The first ``kind`` in ``error``'s cause/context chain (python-tuf and licensing wrap)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


@dataclass(frozen=True)
class RefusalContext:
    """What the engine knows to word a refusal: its portal, license and seat count."""

    portal_url: str
    license_id: str
    max_engines: int
    channel: str | None = None


def refusal_message(refusal: PortalResponseError, context: RefusalContext) -> str:
    """One line for a refused request, naming what the operator can do about it."""
    code = refusal.code
    detail = f" ({refusal.detail})" if refusal.detail else ""
    license_id = context.license_id
    portal = context.portal_url
    messages = {
        LICENSE_REVOKED: f"the portal revoked license {license_id}{detail}: this engine no "
        "longer scores; install a new license with "
        "`vigil-engine init --root ROOT.json --license NEW_TOKEN_FILE`",
        LICENSE_SUSPENDED: f"the portal suspended license {license_id}{detail}: this engine "
        "does not score until the portal reinstates it and `vigil-engine update` succeeds",
        LICENSE_EXPIRED: f"the portal says license {license_id} has expired{detail}: renew it, "
        "then run `vigil-engine init --license NEW_TOKEN_FILE`",
        LICENSE_NOT_YET_VALID: f"the portal says license {license_id} is not valid yet{detail}: "
        "check this machine's clock, or wait until the license starts",
        INVALID_LICENSE: f"the portal at {portal} does not accept license {license_id}{detail}: "
        "check that --portal names the portal that issued it",
        MISSING_LICENSE: f"the portal at {portal} received no license{detail}: a proxy between "
        "this engine and the portal may strip the Authorization header",
        CHANNEL_NOT_ENTITLED: f"the portal does not entitle license {license_id} to channel "
        f"{context.channel or '(unknown)'!r}{detail}: set `channel` in config.json to a channel "
        "the license grants, or ask the portal operator",
        MAX_ENGINES_REACHED: f"this license allows {context.max_engines} engine"
        f"{'s' if context.max_engines != 1 else ''}; all are in use; ask an administrator to "
        "deactivate one",
        NOT_ACTIVATED: f"this engine is not activated at {portal}{detail}: an administrator "
        "deactivated it; run `vigil-engine init --root ROOT.json --license TOKEN_FILE "
        f"--portal {portal}` to activate it again",
    }
    if code in messages:
        return messages[code]
    return f"the portal refused the request (HTTP {refusal.status_code} {code or ''}{detail})"


def engine_error_for(error: BaseException, context: RefusalContext) -> VigilError | None:
    """The engine error for a portal failure in ``error``'s chain, or None if there is none.

    License refusals (401, 403, and 404 ``not_activated``) exit 3; every other failure to
    get an answer (down, timeout, TLS, 5xx, redirect, unexpected 4xx) exits 5. An oversized
    answer is not here: it is an update-verification failure (exit 4) for the caller.
    """
    refusal = find_in_chain(error, PortalResponseError)
    if refusal is not None:
        status = refusal.status_code
        if status in {401, 403} or refusal.code == NOT_ACTIVATED:
            return PortalRefusedError(
                refusal_message(refusal, context), refusal.code, refusal.detail
            )
        if status in _REDIRECTS:
            where = f" to {refusal.location}" if refusal.location else ""
            return PortalUnreachableError(
                f"the portal at {context.portal_url} redirected{where} (HTTP {status}); "
                "give the final address with --portal"
            )
        what = f" {refusal.code}" if refusal.code else ""
        detail = f": {refusal.detail}" if refusal.detail else ""
        return PortalUnreachableError(
            f"the portal at {context.portal_url} answered HTTP {status}{what}{detail} "
            f"for {urlsplit(refusal.url).path}{refusal.wait_note}"
        )
    unreachable = find_in_chain(error, PortalConnectionError)
    if unreachable is not None:
        return PortalUnreachableError(
            f"portal {context.portal_url} unreachable: {unreachable}; try again later"
        )
    return None
