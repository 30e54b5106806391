"""Errors for API clients: RFC 6750 authentication failures, 503s, and one JSON error shape.

Every error body is ``{"detail": "...", "request_id": "..."}`` (field errors sit beside
``detail``); nothing internal (traceback, exception name, SQL, key or token) goes out,
whatever ``DEBUG`` says.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.db import InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response

from .conf import entra_settings
from .context import current_request_id

logger = logging.getLogger("entra_auth.errors")

INTERNAL_ERROR_DETAIL = "The server could not complete the request."
DATABASE_UNAVAILABLE_DETAIL = "The service is temporarily unavailable. Retry later."
DATABASE_RETRY_AFTER_S = 5
# An outage is logged once per interval per process, not once per refused request.
OUTAGE_LOG_INTERVAL_S = 10


def _quote(value: str) -> str:
    """An RFC 7230 quoted-string."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _bearer_challenge(*params: tuple[str, str | None]) -> str:
    """``Bearer name="value", ...`` of the parameters not ``None``, in their order."""
    return "Bearer " + ", ".join(
        f"{name}={_quote(value)}" for name, value in params if value is not None
    )


def www_authenticate(
    realm: str, error: str | None = None, description: str | None = None, scope: str | None = None
) -> str:
    """The ``WWW-Authenticate`` challenge of RFC 6750 §3."""
    return _bearer_challenge(
        ("realm", realm),
        ("error", error or None),
        ("error_description", description or None),
        ("scope", scope or None),
    )


class InvalidBearerRequest(exceptions.AuthenticationFailed):
    """RFC 6750 §3.1 ``invalid_request``: the Authorization header itself is malformed."""

    rfc6750_error = "invalid_request"
    default_detail = "The Authorization header is malformed."
    default_code = "invalid_request"


class InvalidBearerToken(exceptions.AuthenticationFailed):
    """RFC 6750 §3.1 ``invalid_token``: the token is malformed, expired or not for this API."""

    rfc6750_error = "invalid_token"
    default_detail = "The access token is invalid."
    default_code = "invalid_token"


class AuthenticationUnavailable(exceptions.APIException):
    """No signing keys can be had: the fault is ours, so 503 with ``Retry-After``, never 401.

    ``wait`` is what DRF's own exception handler turns into ``Retry-After``, so the header is
    sent whichever ``EXCEPTION_HANDLER`` a project uses.
    """

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "Authentication is temporarily unavailable. Retry later."
    default_code = "authentication_unavailable"

    def __init__(self, retry_after_s: int | None = None) -> None:
        super().__init__()
        self.retry_after_s = retry_after_s or int(entra_settings.KEYS_RETRY_AFTER)
        self.wait = self.retry_after_s


class DatabaseUnavailable(exceptions.APIException):
    """The database cannot be reached, or is locked past its timeout: 503 with ``Retry-After``.

    The client did nothing wrong and may retry; nothing about the failure goes out.
    """

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = DATABASE_UNAVAILABLE_DETAIL
    default_code = "database_unavailable"
    wait = DATABASE_RETRY_AFTER_S


def error_body(detail: str) -> dict[str, Any]:
    """The JSON error shape of every answer (docs/errors.md): ``detail`` and the request id."""
    return {"detail": detail, "request_id": current_request_id()}


def json_error(status_code: int, detail: str) -> Any:
    """An error answer in the JSON error shape, for code outside DRF's exception handling."""
    from django.http import JsonResponse

    return JsonResponse(error_body(detail), status=status_code)


def database_unavailable_response() -> Any:
    """The JSON 503 for a database outage outside DRF views (``RequestContextMiddleware``)."""
    response = json_error(503, DATABASE_UNAVAILABLE_DETAIL)
    response["Retry-After"] = str(DATABASE_RETRY_AFTER_S)
    return response


def is_database_outage(exc: BaseException) -> bool:
    """A failure of the database itself (connection lost or refused, lock or statement
    timeout), as opposed to a bug in a query (``ProgrammingError``, ``IntegrityError``…)."""
    return isinstance(exc, (OperationalError, InterfaceError))


class ReportInterval:
    """Lets the first report through, then one per ``interval_s``, counting those held back,
    so that a failure repeated many times a second cannot flood the log."""

    def __init__(self, interval_s: float) -> None:
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._next_at = 0.0
        self._held_back = 0

    def due(self) -> int | None:
        """Reports held back since the last one, if one is due now; else None (held back)."""
        now = time.monotonic()
        with self._lock:
            if now < self._next_at:
                self._held_back += 1
                return None
            held_back, self._held_back = self._held_back, 0
            self._next_at = now + self._interval_s
        return held_back


class _OutageLog:
    """Logs the first outage error, then at most once per ``OUTAGE_LOG_INTERVAL_S`` with the
    number of requests refused since, so an outage cannot flood the log with tracebacks."""

    def __init__(self) -> None:
        self._interval = ReportInterval(OUTAGE_LOG_INTERVAL_S)

    def report(self, exc: BaseException) -> None:
        suppressed = self._interval.due()
        if suppressed is None:
            return
        logger.error(
            "database unavailable (%s: %s); %d more refused since the last report",
            type(exc).__name__,
            exc,
            suppressed,
        )


database_outage_log = _OutageLog()


def _mapped(exc: Exception) -> Exception:
    """Django's and the database's exceptions as the API exception a client should see."""
    if isinstance(exc, Http404):
        # Django's message names the model ("No Payment matches…"): say no more than this.
        return exceptions.NotFound()
    if isinstance(exc, RequestDataTooBig):
        return RequestBodyTooLarge()
    if isinstance(exc, SuspiciousOperation):
        # Django's name for a malformed request (bad Host, too many fields, …): a 400.
        return exceptions.ParseError("The request is invalid.")
    if is_database_outage(exc):
        database_outage_log.report(exc)
        return DatabaseUnavailable()
    return exc


class RequestBodyTooLarge(exceptions.APIException):
    """A body over what the server accepts: 413, before any of it is parsed."""

    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "request_too_large"


def _error_body(data: Any) -> dict[str, Any]:
    if isinstance(data, dict) and "detail" in data:
        return {"detail": str(data["detail"])}
    if isinstance(data, dict):
        return {"detail": "The request is invalid.", **data}
    if isinstance(data, list):
        return {"detail": " ".join(str(item) for item in data) or "The request is invalid."}
    return {"detail": str(data)}


def insufficient_scope_challenge(missing: tuple[str, ...]) -> str:
    """RFC 6750 §3.1 ``insufficient_scope``, naming the scopes or roles that would grant access."""
    return www_authenticate(entra_settings.REALM, "insufficient_scope", scope=" ".join(missing))


def auth_context_claims(context_id: str) -> str:
    """The claims request asking for an authentication context, as a claims challenge carries
    it: standard base64 of ``{"access_token":{"acrs":{"essential":true,"value":"c1"}}}``
    (Microsoft's "Claims challenges, claims requests and client capabilities")."""
    request = {"access_token": {"acrs": {"essential": True, "value": context_id}}}
    return base64.b64encode(json.dumps(request, separators=(",", ":")).encode()).decode("ascii")


def insufficient_claims_challenge(context_id: str, tenant_id: str) -> str:
    """The claims challenge of a 401 asking for a step-up to the authentication context
    ``context_id``: ``Bearer realm="api", authorization_uri="<INSTANCE><tenant>/oauth2/v2.0/
    authorize", error="insufficient_claims", claims="<base64>"`` (docs/errors.md)."""
    return _bearer_challenge(
        ("realm", entra_settings.REALM),
        ("authorization_uri", f"{entra_settings.instance_url}{tenant_id}/oauth2/v2.0/authorize"),
        ("error", "insufficient_claims"),
        ("claims", auth_context_claims(context_id)),
    )


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF ``EXCEPTION_HANDLER`` (optional): JSON for every error, the request id in the body.

    Without it DRF's own handler answers, with the same statuses and headers; this one adds
    ``request_id`` to every error body and answers unexpected exceptions with a JSON 500 that
    says nothing of their cause (docs/errors.md).
    """
    # Imported here: DRF imports authentication classes while ``rest_framework.views`` loads.
    from rest_framework.views import exception_handler as drf_exception_handler

    exc = _mapped(exc)
    if isinstance(exc, (PermissionDenied, exceptions.APIException)):
        response = drf_exception_handler(exc, context)
    else:
        response = None
    if response is None:
        logger.error("unhandled error in API view", exc_info=exc)
        response = Response(
            {"detail": INTERNAL_ERROR_DETAIL}, status=status.HTTP_500_INTERNAL_SERVER_ERROR
        )
    else:
        response.data = _error_body(response.data)
    response.data["request_id"] = current_request_id()
    return response
