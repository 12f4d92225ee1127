"""The portal's engine-facing routes over real HTTP, on 127.0.0.1, for engine tests.

``PortalServer`` serves a ``FakePortal``'s TUF repository under ``/tuf/metadata/`` and
``/tuf/targets/`` and answers ``POST /api/v1/activations`` and ``/api/v1/leases/renew``,
following the portal contract: a license bearer on every request, JSON errors
``{"error": code, "detail": text}``, seats counted per license, leases signed with the
license key (``licensing.leases``). It also does what a broken or hostile portal (or
something between it and the engine) might: serve older metadata, tampered or oversized
files, or hang.

The report routes of docs/feedback.md (``GET /api/v1/feedback/policy``, ``POST
/api/v1/usage`` and ``/api/v1/feedback``) check the lease (``X-Vigil-Lease``) as well,
accept gzipped bodies, validate every record (``422 invalid_batch`` naming record and
field), accept a batch id once per license (``200 duplicate`` after that), refuse text
unless ``report_policy`` enables sharing (``403 text_sharing_disabled``), and keep what
they accepted (``usage_totals``, ``feedback``) and every request they received, body
decompressed (``report_requests``), so tests can look at exactly what left the engine.
``report_faults`` makes them fail: ``503`` a number of times, or hang up after accepting
a batch (a lost answer).

Tests get a base URL from the ``portal_url`` fixture; an end-to-end test against
``vigil-portal serve`` can provide the same fixture with the real portal's URL.
"""

from __future__ import annotations

import gzip
import json
import shutil
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from licensing.exceptions import LicensingError
from licensing.keys import key_id
from licensing.leases import LeaseClaims, LeaseExpiredError, issue_lease, verify_lease
from licensing.tokens import verify_license
from scoring_engine.model.vectors import FeatureVector, VectorFormatError
from scoring_engine.usage import HISTOGRAM_BINS

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from tests.scoring_engine.licensed import FakePortal

LEASE_PERIOD = timedelta(days=7)
REPORT_PATHS = ("/api/v1/feedback/policy", "/api/v1/usage", "/api/v1/feedback")
VERDICTS = ("not_grooming", "grooming", "imminent_threat")
MAX_REPORT_BODY = 64 * 1024 * 1024


@dataclass
class Tampering:
    """What the server does to what it serves (all off by default)."""

    # Serve metadata from this directory instead of the repository's (a replayed copy).
    metadata_dir: Path | None = None
    # Logical target paths (``bundles/stable/reference-2026.12.0.tar``) served altered.
    altered_targets: set[str] = field(default_factory=set)
    # Metadata file names served with this many extra bytes, and whether the length
    # is announced in Content-Length.
    padded_metadata: dict[str, int] = field(default_factory=dict)
    announce_length: bool = True
    # Drop the Authorization header, as a misconfigured proxy would.
    strip_authorization: bool = False
    # Sign leases with this key instead of the license key (a portal impostor), or issue
    # them to another engine id.
    lease_key: Ed25519PrivateKey | None = None
    lease_engine_id: str | None = None
    # Answer every request with this status and body instead.
    status: int | None = None
    body: bytes = b""
    location: str | None = None


@dataclass
class ReportFaults:
    """How the report routes misbehave (each counter is used up one request at a time)."""

    # Answer this many report POSTs with 503 before handling one.
    unavailable: int = 0
    # The ``Retry-After`` those 503s carry, if any.
    retry_after: str | None = None
    # Accept this many batches, then hang up without answering (the answer is lost).
    drop_after_accept: int = 0
    # Answer the policy with 503 (the engine must then send no text).
    policy_unavailable: bool = False
    # Refuse this many report POSTs as a bad batch (keeping nothing), with this status.
    refuse: int = 0
    refuse_status: int = 422


@dataclass(frozen=True)
class ReportRequest:
    """One request to a report route, as it arrived (body gzip-decoded)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class PortalServer:
    """A running fake portal; ``base_url`` is where engines reach it."""

    portal: FakePortal
    httpd: ThreadingHTTPServer
    thread: threading.Thread
    # License id to its state at the portal: active, revoked, suspended or expired.
    license_status: dict[str, str] = field(default_factory=dict)
    # License id to the channels the portal entitles (default: the token's).
    entitled: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # License id to {engine id: activation id}.
    activations: dict[str, dict[str, str]] = field(default_factory=dict)
    tampering: Tampering = field(default_factory=Tampering)
    requests: list[tuple[str, str]] = field(default_factory=list)
    # Called with each request's handler (to look at headers), before it is answered.
    on_request: Callable[[BaseHTTPRequestHandler], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    # The report routes (docs/feedback.md).
    report_policy: dict[str, Any] = field(
        default_factory=lambda: {
            "text_sharing": False,
            "max_records": 1000,
            "max_body_bytes": 8 * 1024 * 1024,
        }
    )
    report_faults: ReportFaults = field(default_factory=ReportFaults)
    report_requests: list[ReportRequest] = field(default_factory=list)
    # Off for benchmarks: keep no bodies; check no record (only the batch's shape).
    record_bodies: bool = True
    validate_records: bool = True
    # Time spent answering report requests (benchmarks tell it apart from the engine's).
    report_seconds: float = 0.0
    # (license id, batch id) to kind, for every batch accepted.
    accepted_batches: dict[tuple[str, str], str] = field(default_factory=dict)
    # (license id, engine id, day, bundle) to summed counts.
    usage_totals: dict[tuple[str, str, str, str], dict[str, Any]] = field(default_factory=dict)
    # (license id, feedback id) to the latest record.
    feedback: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def snapshot_metadata(self, destination: Path) -> Path:
        """A copy of the metadata as published now, to replay later."""
        shutil.copytree(self.portal.repo.metadata_dir, destination)
        return destination

    def deactivate(self, license_id: str, engine_id: str) -> None:
        with self.lock:
            self.activations.get(license_id, {}).pop(engine_id, None)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def restart(self) -> None:
        """Listen again on the same address after ``stop`` (the portal is back)."""
        handler = self.httpd.RequestHandlerClass
        self.httpd = _QuietServer(self.httpd.server_address[:2], handler)
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}
        )
        self.thread.start()

    def report_bodies(self, path: str) -> list[dict[str, Any]]:
        """The JSON bodies POSTed to ``path``, in order (refused ones too)."""
        return [
            json.loads(request.body)
            for request in self.report_requests
            if request.method == "POST" and request.path == path
        ]


class _RefusedError(Exception):
    def __init__(
        self, status: int, code: str, detail: Any, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}


def _handler(server: PortalServer) -> type[BaseHTTPRequestHandler]:
    portal = server.portal
    license_keys = {key_id(portal.license_key): portal.license_key.public_key()}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            """Quiet: tests assert on what the engine prints."""

        #### Plumbing ####

        def _send(
            self,
            status: int,
            body: bytes,
            content_type: str = "application/json",
            *,
            announce: bool = True,
            headers: dict[str, str] | None = None,
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if announce:
                self.send_header("Content-Length", str(len(body)))
            if server.tampering.location:
                self.send_header("Location", server.tampering.location)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def _error(self, refused: _RefusedError) -> None:
            body = json.dumps({"error": refused.code, "detail": refused.detail}).encode()
            self._send(refused.status, body, headers=refused.headers)

        def _license(self) -> tuple[str, tuple[str, ...], int]:
            header = self.headers.get("Authorization")
            if server.tampering.strip_authorization:
                header = None
            if not header or not header.startswith("Bearer "):
                raise _RefusedError(401, "missing_license", "no license bearer token")
            try:
                verified = verify_license(header.removeprefix("Bearer ").strip(), license_keys)
            except LicensingError as error:
                raise _RefusedError(401, "invalid_license", str(error)) from None
            claims = verified.claims
            state = server.license_status.get(claims.jti, "active")
            if state != "active":
                raise _RefusedError(403, f"license_{state}", f"license {claims.jti} is {state}")
            channels = server.entitled.get(claims.jti, claims.channels)
            return claims.jti, channels, claims.max_engines

        def _dispatch(self, method: str) -> None:
            with server.lock:
                server.requests.append((method, self.path))
            if server.on_request is not None:
                server.on_request(self)
            tampering = server.tampering
            if tampering.status is not None:
                self._send(tampering.status, tampering.body)
                return
            try:
                self._route(method)
            except _RefusedError as refused:
                self._error(refused)

        def _route(self, method: str) -> None:
            license_id, channels, max_engines = self._license()
            if method == "GET" and self.path.startswith("/tuf/metadata/"):
                self._metadata(self.path.removeprefix("/tuf/metadata/"))
            elif method == "GET" and self.path.startswith("/tuf/targets/"):
                self._target(self.path.removeprefix("/tuf/targets/"), channels)
            elif method == "POST" and self.path == "/api/v1/activations":
                self._activate(license_id, max_engines)
            elif method == "POST" and self.path == "/api/v1/leases/renew":
                self._renew(license_id)
            elif self.path in REPORT_PATHS:
                self._report(method, license_id)
            else:
                raise _RefusedError(404, "not_found", f"no route {self.path}")

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

        #### TUF ####

        def _file(self, directory: Path, name: str) -> bytes:
            path = (directory / name).resolve()
            if not path.is_relative_to(directory.resolve()) or not path.is_file():
                raise _RefusedError(404, "not_found", f"{name} not found")
            return path.read_bytes()

        def _metadata(self, name: str) -> None:
            directory = server.tampering.metadata_dir or portal.repo.metadata_dir
            data = self._file(directory, name)
            padding = server.tampering.padded_metadata.get(name, 0)
            self._send(
                200,
                data + b" " * padding,
                announce=server.tampering.announce_length,
            )

        def _target(self, name: str, channels: tuple[str, ...]) -> None:
            directory, _, basename = name.rpartition("/")
            logical = f"{directory}/{basename.partition('.')[2]}"
            parts = name.split("/")
            channel = None
            if parts[0] == "channels":
                channel = basename.partition(".")[2].removesuffix(".json")
            elif parts[0] == "bundles" and len(parts) > 2:
                channel = parts[1]
            if channel is not None and channel not in channels:
                raise _RefusedError(
                    403, "channel_not_entitled", f"the license does not grant channel {channel}"
                )
            data = self._file(portal.repo.targets_dir, name)
            if logical in server.tampering.altered_targets:
                middle = len(data) // 2
                data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]
            self._send(200, data, "application/octet-stream")

        #### API ####

        def _json(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                document = json.loads(self.rfile.read(length))
            except ValueError:
                raise _RefusedError(422, "invalid_request", "body is not JSON") from None
            if not isinstance(document, dict) or not isinstance(document.get("engine_id"), str):
                raise _RefusedError(422, "invalid_request", "engine_id is required")
            return document

        def _lease(self, license_id: str, engine_id: str, activation_id: str) -> bytes:
            now = datetime.now(UTC).replace(microsecond=0)
            claims = LeaseClaims(
                iss=server.base_url,
                sub=server.tampering.lease_engine_id or engine_id,
                jti=activation_id,
                lic=license_id,
                iat=now,
                exp=now + LEASE_PERIOD,
            )
            return json.dumps(
                {
                    "activation_id": activation_id,
                    "lease": issue_lease(claims, server.tampering.lease_key or portal.license_key),
                    "lease_expires_at": claims.exp.isoformat(),
                }
            ).encode()

        def _activate(self, license_id: str, max_engines: int) -> None:
            engine_id = self._json()["engine_id"]
            with server.lock:
                seats = server.activations.setdefault(license_id, {})
                created = engine_id not in seats
                if created and len(seats) >= max_engines:
                    raise _RefusedError(
                        403,
                        "max_engines_reached",
                        f"all {max_engines} engine seats of the license are in use",
                    )
                activation_id = seats.setdefault(engine_id, f"act-{uuid.uuid4().hex[:12]}")
            self._send(201 if created else 200, self._lease(license_id, engine_id, activation_id))

        def _renew(self, license_id: str) -> None:
            engine_id = self._json()["engine_id"]
            with server.lock:
                activation_id = server.activations.get(license_id, {}).get(engine_id)
            if activation_id is None:
                raise _RefusedError(404, "not_activated", "this engine is not activated")
            self._send(200, self._lease(license_id, engine_id, activation_id))

        #### Reports ####

        def _report(self, method: str, license_id: str) -> None:
            """Answer a report route, remembering the request whatever happens."""
            received: list[bytes] = []
            status = 0
            started = time.perf_counter()
            try:
                status = self._answer_report(method, license_id, received)
            except _RefusedError as refused:
                status = refused.status
                raise
            finally:
                self._remember(method, status, received[0] if received else b"")
                with server.lock:
                    server.report_seconds += time.perf_counter() - started

        def _answer_report(self, method: str, license_id: str, received: list[bytes]) -> int:
            """The status sent (0: hung up without answering)."""
            if method == "GET" and self.path == "/api/v1/feedback/policy":
                self._lease_engine(license_id)
                if server.report_faults.policy_unavailable:
                    raise _RefusedError(503, "unavailable", "try again later")
                self._send(200, json.dumps(server.report_policy).encode())
                return 200
            if method != "POST" or self.path == "/api/v1/feedback/policy":
                raise _RefusedError(405, "method_not_allowed", self.path)
            # Read first: hanging up on an unread body would reset the connection.
            body = self._report_body()
            received.append(body)
            engine_id = self._lease_engine(license_id)
            with server.lock:
                unavailable = server.report_faults.unavailable > 0
                if unavailable:
                    server.report_faults.unavailable -= 1
            if unavailable:
                wait = server.report_faults.retry_after
                raise _RefusedError(
                    503, "unavailable", "try again later", {"Retry-After": wait} if wait else None
                )
            with server.lock:
                refuse = server.report_faults.refuse > 0
                if refuse:
                    server.report_faults.refuse -= 1
            if refuse:
                raise _RefusedError(
                    server.report_faults.refuse_status, "invalid_batch", "refused by the test"
                )
            kind = self.path.rsplit("/", 1)[1]
            status, answer = self._batch(kind, license_id, engine_id, body)
            with server.lock:
                hang_up = status == 201 and server.report_faults.drop_after_accept > 0
                if hang_up:
                    server.report_faults.drop_after_accept -= 1
            if hang_up:
                return 0  # accepted and kept, but the answer never leaves
            self._send(status, json.dumps(answer).encode())
            return status

        def _remember(self, method: str, status: int, body: bytes) -> None:
            request = ReportRequest(
                method=method,
                path=self.path,
                headers=dict(self.headers.items()),
                body=body if server.record_bodies else b"",
                status=status,
            )
            with server.lock:
                server.report_requests.append(request)

        def _lease_engine(self, license_id: str) -> str:
            lease = self.headers.get("X-Vigil-Lease")
            if not lease:
                raise _RefusedError(401, "missing_lease", "no X-Vigil-Lease header")
            try:
                verified = verify_lease(lease, license_keys, license_id=license_id)
            except LeaseExpiredError as error:
                raise _RefusedError(403, "lease_expired", str(error)) from None
            except LicensingError as error:
                raise _RefusedError(401, "invalid_lease", str(error)) from None
            claims = verified.claims
            with server.lock:
                activation = server.activations.get(license_id, {}).get(claims.sub)
            if activation != claims.jti:
                raise _RefusedError(404, "not_activated", "this engine is not activated")
            return claims.sub

        def _report_body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            data = self.rfile.read(length)
            if self.headers.get("Content-Encoding") == "gzip":
                try:
                    data = gzip.decompress(data)
                except (OSError, EOFError) as error:
                    raise _RefusedError(400, "invalid_encoding", str(error)) from None
            if len(data) > MAX_REPORT_BODY:
                raise _RefusedError(413, "body_too_large", "body too large")
            return data

        def _batch(
            self, kind: str, license_id: str, engine_id: str, body: bytes
        ) -> tuple[int, dict[str, Any]]:
            try:
                document = json.loads(body)
            except ValueError:
                raise _RefusedError(422, "invalid_batch", "body is not JSON") from None
            if not isinstance(document, dict):
                raise _RefusedError(422, "invalid_batch", "body is not a JSON object")
            batch_id = str(document.get("batch_id"))
            try:
                uuid.UUID(batch_id)
            except ValueError:
                raise _RefusedError(422, "invalid_batch", "batch_id is not a UUID") from None
            with server.lock:
                if (license_id, batch_id) in server.accepted_batches:
                    return 200, {"batch_id": batch_id, "accepted": 0, "duplicate": True}
            records = document.get("records")
            errors: list[dict[str, Any]] = []
            if document.get("engine_id") != engine_id:
                errors.append({"record": None, "field": "engine_id", "reason": "not the lease's"})
            if not isinstance(records, list) or not records:
                errors.append({"record": None, "field": "records", "reason": "empty or missing"})
                records = []
            elif len(records) > server.report_policy["max_records"]:
                errors.append({"record": None, "field": "records", "reason": "too many"})
            check = _usage_errors if kind == "usage" else self._feedback_errors
            if not server.validate_records:
                records = [record for record in records if isinstance(record, dict)]
            for index, record in enumerate(records if server.validate_records else ()):
                errors.extend(
                    {"record": index, "field": name, "reason": reason}
                    for name, reason in check(record)
                )
            if errors:
                raise _RefusedError(422, "invalid_batch", errors[:20])
            if (
                kind == "feedback"
                and not server.report_policy["text_sharing"]
                and any(record.get("text") is not None for record in records)
            ):
                raise _RefusedError(
                    403, "text_sharing_disabled", "the organisation has not enabled sharing"
                )
            with server.lock:
                server.accepted_batches[(license_id, batch_id)] = kind
                for record in records:
                    if kind == "usage":
                        _add_usage(server, license_id, engine_id, record)
                    else:
                        server.feedback[(license_id, record["feedback_id"])] = record
            return 201, {"batch_id": batch_id, "accepted": len(records)}

        def _feedback_errors(self, record: Any) -> list[tuple[str, str]]:
            if not isinstance(record, dict):
                return [("record", "not an object")]
            errors = []
            try:
                uuid.UUID(str(record.get("feedback_id")))
            except ValueError:
                errors.append(("feedback_id", "not a UUID"))
            if not isinstance(record.get("bundle"), str) or not record["bundle"]:
                errors.append(("bundle", "missing"))
            for name in ("score", "threshold"):
                value = record.get(name)
                if not isinstance(value, int | float) or not 0 <= value <= 1:
                    errors.append((name, "not a number in [0, 1]"))
            characteristics = record.get("characteristics")
            if not isinstance(characteristics, dict) or not all(
                isinstance(v, int | float) for v in characteristics.values()
            ):
                errors.append(("characteristics", "not an object of numbers"))
            if record.get("verdict") not in VERDICTS:
                errors.append(("verdict", f"not one of {', '.join(VERDICTS)}"))
            try:
                datetime.fromisoformat(str(record.get("reviewed_at")))
            except ValueError:
                errors.append(("reviewed_at", "not an ISO 8601 time"))
            try:
                FeatureVector.from_dict(record.get("features"))
            except VectorFormatError as error:
                errors.append(("features", str(error)))
            text = record.get("text")
            if text is not None and not (
                isinstance(text, dict)
                and isinstance(text.get("messages"), list)
                and all(
                    isinstance(m, dict) and set(m) == {"author", "text"} for m in text["messages"]
                )
            ):
                errors.append(("text", "not null or {messages: [{author, text}]}"))
            return errors

    return Handler


def _usage_errors(record: Any) -> list[tuple[str, str]]:
    if not isinstance(record, dict):
        return [("record", "not an object")]
    errors = []

    def count(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0

    try:
        datetime.strptime(str(record.get("day")), "%Y-%m-%d")  # noqa: DTZ007
    except ValueError:
        errors.append(("day", "not YYYY-MM-DD"))
    if not isinstance(record.get("bundle"), str) or not record["bundle"]:
        errors.append(("bundle", "missing"))
    errors.extend(
        (name, "not a count")
        for name in ("scored", "flagged", "reviewed")
        if not count(record.get(name))
    )
    verdicts = record.get("verdicts")
    if not isinstance(verdicts, dict) or set(verdicts) != set(VERDICTS):
        errors.append(("verdicts", "not the three verdict counts"))
    elif not all(count(v) for v in verdicts.values()):
        errors.append(("verdicts", "not counts"))
    histogram = record.get("score_histogram")
    if not (
        isinstance(histogram, list)
        and len(histogram) == HISTOGRAM_BINS
        and all(count(v) for v in histogram)
    ):
        errors.append(("score_histogram", f"not {HISTOGRAM_BINS} counts"))
    return errors


def _add_usage(
    server: PortalServer, license_id: str, engine_id: str, record: dict[str, Any]
) -> None:
    key = (license_id, engine_id, record["day"], record["bundle"])
    total = server.usage_totals.setdefault(
        key,
        {
            "scored": 0,
            "flagged": 0,
            "reviewed": 0,
            "verdicts": dict.fromkeys(VERDICTS, 0),
            "score_histogram": [0] * HISTOGRAM_BINS,
        },
    )
    for name in ("scored", "flagged", "reviewed"):
        total[name] += record[name]
    for verdict in VERDICTS:
        total["verdicts"][verdict] += record["verdicts"][verdict]
    total["score_histogram"] = [
        a + b for a, b in zip(total["score_histogram"], record["score_histogram"], strict=True)
    ]


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """An engine hanging up mid-answer (it refused what it was sent) is expected."""


def start_server(portal: FakePortal) -> PortalServer:
    """Serve ``portal`` on a free port of 127.0.0.1 in a background thread."""
    httpd = _QuietServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    server = PortalServer(portal=portal, httpd=httpd, thread=thread)
    httpd.RequestHandlerClass = _handler(server)
    thread.start()
    return server


def closed_port_url() -> str:
    """The URL of a port nothing listens on (a portal that is down)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class SilentListener:
    """Accepts connections (the kernel does) and never answers: a hung portal."""

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(8)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.socket.getsockname()[1]}"

    def close(self) -> None:
        self.socket.close()


def running(portal: FakePortal) -> Iterator[PortalServer]:
    """For fixtures: a started server, stopped afterwards."""
    server = start_server(portal)
    try:
        yield server
    finally:
        server.stop()
