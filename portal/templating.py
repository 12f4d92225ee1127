"""The one Jinja2 environment of the portal's pages and e-mails.

Templates live in ``portal/templates``: ``base.html`` and its ``includes/``,
``errors/``, ``admin/<area>/{list,detail}.html`` and
``email/<name>/{subject.txt,body.txt,body.html}``. HTML is autoescaped; plain
text (e-mail subjects and bodies) is not, since it is never parsed as HTML.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

TEMPLATES_DIR: Final = Path(__file__).resolve().parent / "templates"
STATIC_DIR: Final = Path(__file__).resolve().parent / "static"


def format_time(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def format_age(moment: datetime | None, now: datetime | None = None) -> str:
    """How long ago, in the largest whole unit: ``3 days``, ``5 hours``, ``just now``."""
    if moment is None:
        return ""
    elapsed = (now or datetime.now(UTC)) - moment
    if elapsed < timedelta(minutes=1):
        return "just now"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        count = int(elapsed.total_seconds() // size)
        if count >= 1:
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return "just now"  # pragma: no cover - unreachable after the minute check


@functools.lru_cache(maxsize=1)
def template_environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(enabled_extensions=("html",), default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["time"] = format_time
    environment.filters["age"] = format_age
    return environment
