"""Engine activations: the engines' JSON API and the administrators' deactivation.

Engines (``Authorization: Bearer <license token>``, JSON bodies of at most
``portal.web.security.API_MAX_BODY_BYTES``; errors are ``{"error": CODE, "detail": ...}``):

- ``POST /api/v1/activations`` ``{"engine_id", "hostname"?, "engine_version"}``:
  201 with a lease for a new seat, 200 when this engine already holds one,
  403 ``max_engines_reached`` when every seat is taken.
- ``POST /api/v1/leases/renew`` ``{"engine_id"}``: 200 with a new lease, 404
  ``not_activated`` once the engine was deactivated.

Administrators: ``POST /admin/licenses/{id}/engines/{activation_id}/deactivate``
(the license page lists the active engines, each with this form).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from portal.engines import service
from portal.engines.schemas import ActivationRequest, LeaseRenewalRequest, LeaseResponse
from portal.errors import ActivationNotFoundError, LicenseNotFoundError
from portal.web.deps import (
    AppSettings,
    CurrentAdmin,
    DbSession,
    LicensedEngine,
    LicenseSigningKey,
    Mail,
)
from portal.web.deps import current_admin as require_admin
from portal.web.pages import form_action
from portal.web.security import BodyLimitedRoute

api_router = APIRouter(prefix="/api/v1", route_class=BodyLimitedRoute)
admin_router = APIRouter(prefix="/admin/licenses", dependencies=[Depends(require_admin)])


def _signer(settings: AppSettings, signing_key: LicenseSigningKey) -> service.LeaseSigner:
    return service.LeaseSigner(
        signing_key=signing_key, issuer=settings.portal_url, period=settings.lease_period
    )


LeaseSigner = Annotated[service.LeaseSigner, Depends(_signer)]


def _lease_response(issued: service.IssuedLease, *, status_code: int) -> JSONResponse:
    body = LeaseResponse(
        activation_id=issued.activation.id, lease=issued.lease, lease_expires_at=issued.expires_at
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=status_code)


@api_router.post("/activations", summary="Take a seat of the license and receive a lease")
def activate(
    body: ActivationRequest,
    engine: LicensedEngine,
    session: DbSession,
    signer: LeaseSigner,
) -> JSONResponse:
    issued = service.activate_engine(
        session,
        engine.license_id,
        engine_id=body.engine_id,
        engine_version=body.engine_version,
        hostname=body.hostname,
        signer=signer,
    )
    return _lease_response(issued, status_code=201 if issued.created else 200)


@api_router.post("/leases/renew", summary="Renew the lease of an activated engine")
def renew(
    body: LeaseRenewalRequest,
    engine: LicensedEngine,
    session: DbSession,
    signer: LeaseSigner,
) -> JSONResponse:
    issued = service.renew_lease(
        session,
        engine.license_id,
        engine_id=body.engine_id,
        engine_version=body.engine_version,
        hostname=body.hostname,
        signer=signer,
    )
    return _lease_response(issued, status_code=200)


def _uuid(value: str, error: type[LicenseNotFoundError | ActivationNotFoundError]) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise error("there is no such page") from None


@admin_router.post(
    "/{license_id}/engines/{activation_id}/deactivate", summary="Free an engine's seat"
)
def deactivate(
    request: Request,
    license_id: str,
    activation_id: str,
    session: DbSession,
    mail: Mail,
    admin: CurrentAdmin,
) -> Response:
    parsed_license = _uuid(license_id, LicenseNotFoundError)
    parsed_activation = _uuid(activation_id, ActivationNotFoundError)
    detail_url = f"/admin/licenses/{parsed_license}"
    return form_action(
        request,
        session,
        mail,
        lambda: service.deactivate_engine(
            session, parsed_license, parsed_activation, actor=admin.email
        ),
        success_url=detail_url,
        message="Engine deactivated: its seat is free and its next lease renewal is refused.",
        failure_url=detail_url,
    )
