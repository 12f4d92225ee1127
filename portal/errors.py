"""The portal's domain errors.

Every error names the HTTP status a web response should carry and the exit code
(SPEC §6) a command line should end with, so each front end maps errors in one
place: ``portal.cli._output`` for the CLI, the exception handlers of the web app
for HTML and JSON. Messages are shown to operators as they are; they never
carry secrets (passphrases, private keys, whole tokens).

Errors raised by ``licensing`` (``licensing.exceptions.LicensingError``) carry
their own exit code and are mapped alongside these.
"""

from __future__ import annotations

from typing import ClassVar


class PortalError(Exception):
    """Base class of the portal's domain errors."""

    status_code: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1


#### Bad input (exit code 2) ####


class InvalidInputError(PortalError):
    """The request or command input cannot be used as given."""

    status_code: ClassVar[int] = 400
    exit_code: ClassVar[int] = 2


class ConfigurationError(PortalError):
    """The portal's settings or its state on disk are unusable."""

    status_code: ClassVar[int] = 500
    exit_code: ClassVar[int] = 2


class NotFoundError(PortalError):
    status_code: ClassVar[int] = 404
    exit_code: ClassVar[int] = 2


class ConflictError(PortalError):
    status_code: ClassVar[int] = 409
    exit_code: ClassVar[int] = 2


class InvalidTransitionError(ConflictError):
    """A state machine was asked for a move its transition table forbids."""


#### License problems (exit code 3) ####


class LicenseNotFoundError(NotFoundError):
    exit_code: ClassVar[int] = 3


class LicenseStateError(InvalidTransitionError):
    """The license's status forbids the action (e.g. revoking a revoked license)."""

    exit_code: ClassVar[int] = 3


#### Bundle problems (exit code 4) ####


class BundleNotFoundError(NotFoundError):
    exit_code: ClassVar[int] = 4


class BundleConflictError(ConflictError):
    """The bundle version is already published, or not newer than the channel's."""

    exit_code: ClassVar[int] = 4


class InvalidModelDirectoryError(InvalidInputError):
    """The model directory lacks a file or its manifest is malformed."""


#### Web: who may do what (no exit code: the command line never raises these) ####


class AuthenticationRequiredError(PortalError):
    """The page needs a signed-in administrator; HTML pages redirect to the login."""

    status_code: ClassVar[int] = 401


class PermissionDeniedError(PortalError):
    status_code: ClassVar[int] = 403


class CsrfError(PermissionDeniedError):
    """A form arrived without the CSRF token of the session that displayed it."""


class RateLimitedError(PortalError):
    """Too many requests from one client address; ``retry_after`` is in seconds."""

    status_code: ClassVar[int] = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class LinkUnusableError(PortalError):
    """A magic link is unknown, expired or already used (one answer for all three,
    so a link's fate is not disclosed to whoever holds a guessed token).
    """

    status_code: ClassVar[int] = 410
    exit_code: ClassVar[int] = 2


class ApplicationNotFoundError(NotFoundError):
    pass


class AdminNotFoundError(NotFoundError):
    pass


class ChecklistIncompleteError(ConflictError):
    """Approval needs every item of the vetting checklist ticked."""
