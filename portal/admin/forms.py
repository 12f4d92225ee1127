"""The login, invitation and invitation-acceptance forms."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from portal.admin.credentials import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
from portal.forms import FormOutcome, FormReader

if TYPE_CHECKING:
    from collections.abc import Mapping


@dataclass(frozen=True)
class LoginCredentials:
    email: str
    password: str
    code: str


def read_login(values: Mapping[str, str]) -> FormOutcome[LoginCredentials]:
    form = FormReader(values)
    email = form.text("email", "your e-mail address", max_length=254)
    password = values.get("password", "")[:MAX_PASSWORD_LENGTH]
    if not password:
        form.error("password", "Enter your password.")
    code = form.text("totp_code", "the code from your authenticator app", max_length=16)
    # Only the e-mail address is typed again: a password never goes back into a page.
    kept = {"email": form.values.get("email", "")}
    if not form.ok:
        return FormOutcome(None, form.errors, kept)
    return FormOutcome(LoginCredentials(email, password, code), {}, kept)


def read_invitation(values: Mapping[str, str]) -> FormOutcome[str]:
    form = FormReader(values)
    email = form.email("email", "the new administrator's e-mail address")
    return FormOutcome(email if form.ok else None, form.errors, form.values)


@dataclass(frozen=True)
class Enrolment:
    password: str
    code: str


def read_enrolment(values: Mapping[str, str]) -> FormOutcome[Enrolment]:
    form = FormReader(values)
    password = values.get("password", "")
    if len(password) < MIN_PASSWORD_LENGTH:
        form.error("password", f"Choose a password of at least {MIN_PASSWORD_LENGTH} characters.")
    elif len(password) > MAX_PASSWORD_LENGTH:
        form.error("password", f"Choose a password of at most {MAX_PASSWORD_LENGTH} characters.")
    elif values.get("password_confirm", "") != password:
        form.error("password_confirm", "The two passwords are not the same.")
    code = form.text("totp_code", "the code from your authenticator app", max_length=16)
    if not form.ok:
        return FormOutcome(None, form.errors, {})
    return FormOutcome(Enrolment(password, code), {}, {})
