"""The portal's domain errors.

Every error names the HTTP status a web response should carry and the exit code
(SPEC §6) a command line should end with, so each front end maps errors in one
place: ``portal.cli._output`` for the CLI, the exception handlers of the web app
for HTML and JSON. Messages are shown to operators as they are; they never
carry secrets (passphrases, private keys, whole tokens).

Errors raised by ``licensing`` (``licensing.exceptions.LicensingError``) carry
their own exit code and are mapped alongside these.

JSON answers (the engine API under ``/api/`` and ``/tuf/``) name the error with
a stable machine-readable ``error_code`` (``{"error": "license_revoked",
"detail": ...}``); errors without one get a code for their HTTP status.
An error whose ``keeps_transaction`` is true is a refusal the audit trail must
remember: the request's transaction is committed before it is answered.
"""

from __future__ import annotations

from typing import ClassVar


class PortalError(Exception):
    """Base class of the portal's domain errors."""

    status_code: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1
    error_code: ClassVar[str | None] = None
    keeps_transaction: ClassVar[bool] = False

    def response_headers(self) -> dict[str, str]:
        """Headers a web response to this error must carry."""
        return {}

    def json_detail(self) -> object:
        """The ``detail`` of a JSON answer: the message, unless the error has more to say."""
        return str(self)


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

    def response_headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


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


#### The engine API: license bearer authentication and entitlements ####


class EngineAuthenticationError(PortalError):
    """No usable license token came with an engine's request (401, with a
    ``WWW-Authenticate: Bearer`` challenge as RFC 6750 describes).
    """

    status_code: ClassVar[int] = 401
    error_code: ClassVar[str | None] = "invalid_license"

    def response_headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="vigil", error="invalid_token"'}


class MissingLicenseError(EngineAuthenticationError):
    error_code: ClassVar[str | None] = "missing_license"

    def response_headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="vigil"'}


class InvalidLicenseTokenError(EngineAuthenticationError):
    """Malformed, wrongly signed, or naming a license the portal does not know."""


class LicenseRefusedError(PermissionDeniedError):
    """A genuine license the portal no longer serves (its ``error_code`` says why)."""

    error_code: ClassVar[str | None] = "license_refused"


class RevokedLicenseError(LicenseRefusedError):
    error_code: ClassVar[str | None] = "license_revoked"


class SuspendedLicenseError(LicenseRefusedError):
    error_code: ClassVar[str | None] = "license_suspended"


class ExpiredLicenseError(LicenseRefusedError):
    error_code: ClassVar[str | None] = "license_expired"


class NotYetValidLicenseError(LicenseRefusedError):
    error_code: ClassVar[str | None] = "license_not_yet_valid"


class ChannelNotEntitledError(PermissionDeniedError):
    """The license's ``channels`` do not include the requested target's channel."""

    error_code: ClassVar[str | None] = "channel_not_entitled"


class TargetNotFoundError(NotFoundError):
    """No such file in the published update repository."""

    error_code: ClassVar[str | None] = "not_found"


class MaxEnginesReachedError(PermissionDeniedError):
    """Every seat of the license is held by another active engine. The refusal
    is audited (``engine:refused``), so its event is committed.
    """

    error_code: ClassVar[str | None] = "max_engines_reached"
    keeps_transaction: ClassVar[bool] = True


class NotActivatedError(NotFoundError):
    """The engine holds no active activation of the license (never activated,
    or deactivated by an administrator): it must activate again.
    """

    error_code: ClassVar[str | None] = "not_activated"


class ActivationNotFoundError(NotFoundError):
    pass


#### The engine API: usage and feedback reports (docs/feedback.md) ####


class UnsupportedMediaTypeError(PortalError):
    """A body that is not JSON, or a ``Content-Encoding`` other than ``gzip`` or ``identity``."""

    status_code: ClassVar[int] = 415
    error_code: ClassVar[str | None] = "unsupported_media_type"


class InvalidContentEncodingError(InvalidInputError):
    """A body declared ``Content-Encoding: gzip`` that is not (complete) gzip data."""

    error_code: ClassVar[str | None] = "invalid_content_encoding"


class LeaseRefusedError(PortalError):
    """The ``X-Vigil-Lease`` of a report does not prove the engine holds a seat."""

    status_code: ClassVar[int] = 401
    error_code: ClassVar[str | None] = "invalid_lease"


class MissingLeaseError(LeaseRefusedError):
    error_code: ClassVar[str | None] = "missing_lease"


class InvalidLeaseTokenError(LeaseRefusedError):
    """Malformed, wrongly signed, not yet valid, of another license or another
    engine than the body names, or of an activation that is no longer current.
    """


class ExpiredLeaseError(LeaseRefusedError):
    """The lease expired: the engine renews it (``/api/v1/leases/renew``) and retries."""

    status_code: ClassVar[int] = 403
    error_code: ClassVar[str | None] = "lease_expired"


class InvalidBatchError(InvalidInputError):
    """A usage or feedback batch with malformed records; nothing of it is kept.

    ``problems`` are ``{"record": INDEX or None, "field": NAME, "reason": TEXT}``
    (``record`` is None for the batch's own members); JSON answers carry them as
    the ``detail`` list. They never quote the record's values.
    """

    status_code: ClassVar[int] = 422
    error_code: ClassVar[str | None] = "invalid_batch"

    def __init__(self, problems: list[dict[str, object]]) -> None:
        first = problems[0] if problems else {}
        where = f"record {first['record']}: " if first.get("record") is not None else ""
        super().__init__(
            f"{len(problems)} problem(s) in the batch, first {where}"
            f"{first.get('field')}: {first.get('reason')}"
        )
        self.problems = problems

    def json_detail(self) -> object:
        return self.problems


class BatchConflictError(ConflictError):
    """A batch id already accepted from another license, or as the other kind of batch."""

    error_code: ClassVar[str | None] = "batch_conflict"


class TextSharingDisabledError(PermissionDeniedError):
    """Feedback carries message text, but the organisation has not enabled sharing."""

    error_code: ClassVar[str | None] = "text_sharing_disabled"


class OrganisationNotFoundError(NotFoundError):
    pass
