"""``vigil-portal serve``: the web portal and the engine API under uvicorn.

The portal's own log messages (``portal.*``: the timestamp schedule, server
errors) go to standard error next to uvicorn's, at INFO and above.
"""

from __future__ import annotations

import copy
import gc
from typing import Annotated, Any

import typer

from portal.cli._common import console, handle_errors, warn
from portal.db import current_revision
from portal.errors import ConfigurationError
from portal.settings import get_settings


def log_config() -> dict[str, Any]:
    """uvicorn's logging configuration, plus the ``portal`` loggers."""
    from uvicorn.config import LOGGING_CONFIG  # noqa: PLC0415

    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["portal"] = {
        "()": "uvicorn.logging.DefaultFormatter",
        "fmt": "%(levelprefix)s %(name)s: %(message)s",
    }
    config["handlers"]["portal"] = {
        "formatter": "portal",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
    }
    config["loggers"]["portal"] = {"handlers": ["portal"], "level": "INFO", "propagate": False}
    return config


@handle_errors
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port.")] = 8000,
) -> None:
    """Run the web portal."""
    import uvicorn  # noqa: PLC0415 (only this command needs the server)

    from portal.web.app import create_app  # noqa: PLC0415

    settings = get_settings()
    if current_revision() is None:
        raise ConfigurationError("the database has no schema: run 'vigil-portal init' first")
    if not settings.session_cookie_secure:
        warn("session cookies are sent over plain http (VIGIL_SESSION_COOKIE_SECURE=false)")
    if settings.is_development and not settings.smtp_host:
        console.print(f"e-mail is written to {settings.outbox_dir}")
    console.print(f"Vigil portal on http://{host}:{port} (public URL {settings.portal_url})")
    app = create_app(settings)
    # What start-up imported (the model code, scipy, scikit-learn: some 200,000 objects)
    # lives as long as the server; frozen, full collections stop walking it on requests.
    gc.collect()
    gc.freeze()
    uvicorn.run(
        app,
        host=host,
        port=port,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        server_header=False,
        log_level="info",
        log_config=log_config(),
    )
