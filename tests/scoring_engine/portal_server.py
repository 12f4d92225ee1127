"""The portal's engine-facing routes over real HTTP, on 127.0.0.1, for engine tests.

``PortalServer`` serves a ``FakePortal``'s TUF repository under ``/tuf/metadata/`` and
``/tuf/targets/`` and answers ``POST /api/v1/activations`` and ``/api/v1/leases/renew``,
following the portal contract: a license bearer on every request, JSON errors
``{"error": code, "detail": text}``, seats counted per license, leases signed with the
license key (``licensing.leases``). It also does what a broken or hostile portal (or
something between it and the engine) might: serve older metadata, tampered or oversized
files, or hang.

Tests get a base URL from the ``portal_url`` fixture; an end-to-end test against
``vigil-portal serve`` can provide the same fixture with the real portal's URL.
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from licensing.exceptions import LicensingError
from licensing.keys import key_id
from licensing.leases import LeaseClaims, issue_lease
from licensing.tokens import verify_license

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from tests.scoring_engine.licensed import FakePortal

LEASE_PERIOD = timedelta(days=7)


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


class _RefusedError(Exception):
    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.detail = detail


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
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            if announce:
                self.send_header("Content-Length", str(len(body)))
            if server.tampering.location:
                self.send_header("Location", server.tampering.location)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def _error(self, refused: _RefusedError) -> None:
            body = json.dumps({"error": refused.code, "detail": refused.detail}).encode()
            self._send(refused.status, body)

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

    return Handler


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
