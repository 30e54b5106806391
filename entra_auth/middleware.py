"""Per-request context: a request id on every response, and no tenant outliving the request.

The request id and the tenant context are context variables, set for the request and reset
when it ends, also on exceptions: a worker thread never carries one request's tenant into the
next. The request runs in the thread's own context (not a copy of it), so what Django keeps
per context across requests, such as cache connections, is reused.
"""

from __future__ import annotations

import contextvars
import re
import uuid
from collections.abc import Callable

from csp.constants import HEADER as CSP_HEADER
from csp.middleware import CSPMiddleware
from django.http import HttpRequest, HttpResponse, JsonResponse

from .conf import entra_settings
from .context import without_tenant

REQUEST_ID_HEADER = "X-Request-ID"
_INCOMING_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "entra_auth_request_id", default=None
)


def current_request_id() -> str | None:
    """The id of the request being handled in this context, if any."""
    return _request_id.get()


class RequestContextMiddleware:
    """Gives each request ``request.request_id`` and a tenant context that ends with it.

    The id is a trusted proxy's ``X-Request-ID`` when ``ENTRA_AUTH["TRUST_REQUEST_ID_HEADER"]``
    is on (the proxy sets or strips it) and the value is short and plain; otherwise a new
    UUID, so clients cannot forge the ids that tie logs and audit events together.
    Put it first in ``MIDDLEWARE``.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = None
        if entra_settings.TRUST_REQUEST_ID_HEADER:
            incoming = request.headers.get(REQUEST_ID_HEADER, "")
            if _INCOMING_REQUEST_ID.fullmatch(incoming):
                request_id = incoming
        request_id = request_id or uuid.uuid4().hex
        request.request_id = request_id
        token = _request_id.set(request_id)
        try:
            with without_tenant():
                response = self.get_response(request)
        finally:
            _request_id.reset(token)
        response[REQUEST_ID_HEADER] = request_id
        return response


ERROR_DETAILS = {
    400: "The request is invalid.",
    403: "You do not have permission to perform this action.",
    404: "Not found.",
    405: "Method not allowed.",
    413: "The request body is too large.",
}
SERVER_ERROR_DETAIL = "The server could not complete the request."
_BODY_HEADERS = frozenset({"content-type", "content-length", "content-disposition"})


class JsonErrorMiddleware:
    """API routes answer errors in JSON, never Django's HTML pages, whatever ``DEBUG`` says.

    Django renders 404s for unknown URLs and 500s from outside DRF views as HTML (with URL
    patterns and tracebacks when ``DEBUG`` is on). Under ``ENTRA_AUTH["API_PATH_PREFIXES"]``
    such answers are replaced by ``{"detail": ..., "request_id": ...}``. Place it after
    ``SecurityMiddleware`` and ``ContentSecurityPolicyMiddleware``, so that they add their
    headers to its answers.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code < 400 or not self._is_api(request.path):
            return response
        if response.get("Content-Type", "").startswith("application/json"):
            return response
        detail = ERROR_DETAILS.get(response.status_code, SERVER_ERROR_DETAIL)
        if response.status_code < 500 and response.status_code not in ERROR_DETAILS:
            detail = "The request could not be completed."
        replacement = JsonResponse(
            {"detail": detail, "request_id": current_request_id()}, status=response.status_code
        )
        # Keep what inner layers said (Allow, Retry-After, security headers), not the body's.
        for header, value in response.items():
            if header.lower() not in _BODY_HEADERS:
                replacement[header] = value
        return replacement

    @staticmethod
    def _is_api(path: str) -> bool:
        return is_api_path(path)


def is_api_path(path: str) -> bool:
    """Whether ``path`` is under ``ENTRA_AUTH["API_PATH_PREFIXES"]``."""
    return path.startswith(tuple(entra_settings.API_PATH_PREFIXES))


STRICT_API_POLICY = "default-src 'none'; frame-ancestors 'none'"


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    """django-csp, with the strictest policy on API routes (JSON needs nothing loaded).

    Other routes (the admin) get the project's ``CONTENT_SECURITY_POLICY``. API answers get
    the strict policy even for the 404/500 pages django-csp leaves bare when ``DEBUG`` is on.
    """

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if is_api_path(request.path) and CSP_HEADER not in response:
            response[CSP_HEADER] = STRICT_API_POLICY
        return super().process_response(request, response)
