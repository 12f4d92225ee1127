"""Reading HTML form fields with one clear message per field.

A ``FormReader`` reads each field of a submitted form, cleans it and records
a message for every field it cannot accept, so a page can show all problems
at once next to their fields and re-render what was typed (``values``).
Messages are written for the person filling in the form, not for developers.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Generic, TypeVar
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from collections.abc import Mapping

    from starlette.datastructures import FormData

T = TypeVar("T")

MAX_FIELD_LENGTH: Final = 10_000
_EMAIL: Final = re.compile(r"[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+")
_HOST: Final = re.compile(
    r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+"
)
YES: Final = frozenset({"yes", "on", "true", "1"})
NO: Final = frozenset({"no", "off", "false", "0"})


@dataclass(frozen=True)
class FormOutcome(Generic[T]):
    """A read form: ``data`` when every field was accepted, else ``errors`` per field;
    ``values`` as typed, to fill the form in again.
    """

    data: T | None
    errors: dict[str, str]
    values: dict[str, str]


def form_values(form: FormData) -> dict[str, str]:
    """The text fields of a submitted form (the first value of each; files ignored)."""
    values: dict[str, str] = {}
    for name, value in form.multi_items():
        if isinstance(value, str) and name not in values:
            values[name] = value[:MAX_FIELD_LENGTH]
    return values


def _without_controls(value: str, *, multiline: bool) -> str:
    kept = []
    for char in value:
        if multiline and char in "\n\t":
            kept.append(char)
        elif unicodedata.category(char) in {"Cc", "Cf"}:
            kept.append(" " if char in "\r\n\t" else "")
        else:
            kept.append(char)
    return "".join(kept)


def clean_email(value: str) -> str | None:
    """The address with its domain lower-cased, or None if it is not one."""
    candidate = value.strip()
    if len(candidate) > 254 or not _EMAIL.fullmatch(candidate):
        return None
    local, _, domain = candidate.rpartition("@")
    return f"{local}@{domain.lower()}"


class FormReader:
    """Reads fields of one submitted form; ``errors`` maps field names to messages."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self.values = dict(values)
        self.errors: dict[str, str] = {}

    @property
    def ok(self) -> bool:
        return not self.errors

    def error(self, name: str, message: str) -> None:
        self.errors.setdefault(name, message)

    def text(
        self,
        name: str,
        label: str,
        *,
        required: bool = True,
        max_length: int = 200,
        multiline: bool = False,
    ) -> str:
        raw = _without_controls(self.values.get(name, ""), multiline=multiline)
        value = raw.replace("\r\n", "\n").strip() if multiline else " ".join(raw.split())
        if required and not value:
            self.error(name, f"Enter {label}.")
        elif len(value) > max_length:
            self.error(
                name, f"{label[0].upper()}{label[1:]} must be at most {max_length} characters."
            )
        return value

    def email(self, name: str, label: str = "an e-mail address") -> str:
        value = self.text(name, label, max_length=254)
        if value and name not in self.errors:
            cleaned = clean_email(value)
            if cleaned is None:
                self.error(name, "Enter an e-mail address like name@example.org.")
                return value
            return cleaned
        return value

    def url(self, name: str, label: str) -> str:
        value = self.text(name, label, max_length=500)
        if not value or name in self.errors:
            return value
        candidate = value if "://" in value else f"https://{value}"
        parts = urlsplit(candidate)
        if parts.scheme not in {"http", "https"} or not _HOST.fullmatch(parts.hostname or ""):
            self.error(name, "Enter a web address like https://example.org.")
            return value
        return candidate

    def integer(self, name: str, label: str, *, minimum: int, maximum: int) -> int | None:
        value = self.text(name, label, max_length=32).replace(",", "").replace("_", "")
        if name in self.errors:
            return None
        if not re.fullmatch(r"[0-9]+", value):
            self.error(name, f"Enter {label} as a whole number, like 1500.")
            return None
        number = int(value)
        if not minimum <= number <= maximum:
            self.error(name, f"Enter {label} between {minimum:,} and {maximum:,}.")
            return None
        return number

    def choice(self, name: str, label: str, choices: Mapping[str, str]) -> str:
        value = self.values.get(name, "").strip()
        if value not in choices:
            self.error(name, f"Choose {label}.")
        return value

    def yes_no(self, name: str, label: str) -> bool | None:
        value = self.values.get(name, "").strip().lower()
        if value in YES:
            return True
        if value in NO:
            return False
        self.error(name, f"Choose yes or no: {label}")
        return None

    def checkbox(self, name: str) -> bool:
        return self.values.get(name, "").strip().lower() in YES
