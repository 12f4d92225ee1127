"""Passwords (argon2id) and TOTP codes (RFC 6238) of administrators.

- Passwords are 12 to 1024 characters; longer input is refused before hashing
  so a login cannot be made to hash megabytes.
- ``verify_password`` with no stored hash still runs one argon2 verification
  (against a hash of a random password made once per process), so a login for
  an unknown address takes as long as one with a wrong password.
- A TOTP code is accepted for the current 30-second step and one step either
  side (clock drift), each compared in constant time, and only for a step later
  than the last one accepted: a code is never accepted twice (RFC 6238 §5.2).
"""

from __future__ import annotations

import functools
import hmac
import re
import secrets
from typing import TYPE_CHECKING, Final

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from portal.errors import InvalidInputError

if TYPE_CHECKING:
    from datetime import datetime

MIN_PASSWORD_LENGTH: Final = 12
MAX_PASSWORD_LENGTH: Final = 1024
TOTP_ISSUER: Final = "Vigil portal"
_CODE: Final = re.compile(r"[0-9]{6}")

password_hasher = PasswordHasher()


def check_password_policy(password: str) -> str:
    """Raises InvalidInputError unless ``password`` is long enough to keep."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInputError(f"the password must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInputError(f"the password must be at most {MAX_PASSWORD_LENGTH} characters")
    return password


def hash_password(password: str) -> str:
    return password_hasher.hash(check_password_policy(password))


@functools.lru_cache(maxsize=1)
def _decoy_hash() -> str:
    return password_hasher.hash(secrets.token_urlsafe(24))


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored_hash`` (always False without one)."""
    candidate = password[:MAX_PASSWORD_LENGTH]
    try:
        return password_hasher.verify(stored_hash or _decoy_hash(), candidate) and bool(stored_hash)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """Whether ``stored_hash`` was made with weaker parameters than today's."""
    return password_hasher.check_needs_rehash(stored_hash)


def generate_password() -> str:
    """A random password for an administrator who did not choose one."""
    return secrets.token_urlsafe(18)


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(secret: str, email: str) -> str:
    """The ``otpauth://`` enrolment URI an authenticator app reads."""
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=TOTP_ISSUER)


def verify_totp(secret: str, code: str, *, last_step: int | None, now: datetime) -> int | None:
    """The time step ``code`` is valid for, or None (wrong, malformed or reused)."""
    code = "".join(code.split())
    if not _CODE.fullmatch(code):
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    accepted = None
    for step in (current - 1, current, current + 1):
        # No early exit: every candidate is compared, whichever matches.
        if hmac.compare_digest(totp.generate_otp(step), code) and (
            last_step is None or step > last_step
        ):
            accepted = step
    return accepted
