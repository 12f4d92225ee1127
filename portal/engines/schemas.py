"""The engine API's request and response bodies (``/api/v1/...``), validated by pydantic.

Requests ignore members they do not know (a newer engine may send more) but
type and bound every member they read; the whole body is limited to 64 KiB
before it is parsed (``portal.web.security.BodyLimitedRoute``, 413 beyond).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Final

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_serializer,
    field_validator,
)

# Shown to administrators (escaped): any text but control characters. Host names
# in particular come from the operating system and are not always DNS names.
_NO_CONTROL_CHARACTERS: Final = r"^[^\x00-\x1f\x7f-\x9f]+$"

EngineVersion = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=64, pattern=_NO_CONTROL_CHARACTERS
    ),
]
Hostname = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=255, pattern=_NO_CONTROL_CHARACTERS
    ),
]


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    @field_validator("hostname", mode="before", check_fields=False)
    @classmethod
    def _blank_hostname_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value


class ActivationRequest(_Request):
    """``POST /api/v1/activations``."""

    engine_id: uuid.UUID = Field(description="The engine's own id, chosen once and kept.")
    hostname: Hostname | None = None
    engine_version: EngineVersion


class LeaseRenewalRequest(_Request):
    """``POST /api/v1/leases/renew``; the version and host name are optional updates."""

    engine_id: uuid.UUID
    hostname: Hostname | None = None
    engine_version: EngineVersion | None = None


class LeaseResponse(BaseModel):
    """The answer to an activation or a renewal: a new signed lease."""

    activation_id: uuid.UUID
    lease: str = Field(description="Compact JWS, typ vigil-lease+jwt, signed with a license key.")
    lease_expires_at: datetime

    @field_serializer("lease_expires_at")
    def _iso_z(self, value: datetime) -> str:
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
