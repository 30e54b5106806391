"""``RequestContextMiddleware``: the one middleware entra_auth needs (docs/configuration.md).

For each request it

- gives it an id (``request.request_id``, the ``X-Request-ID`` response header, log lines and
  audit rows);
- runs it outside any tenant context and drops the tenant authentication entered when the
  request ends, also on exceptions, so a worker thread never carries one caller's tenant into
  the next request (docs/tenancy.md);
- answers a database outage with 503 and ``Retry-After`` in any view, not a 500;
- completes a 403 that entra_auth's permissions refused: ``WWW-Authenticate: Bearer
  error="insufficient_scope", scope="…"`` (RFC 6750 §3.1) and an ``authorization_denied``
  audit event, whichever DRF ``EXCEPTION_HANDLER`` the project uses;
- turns a 403 that only an authentication context would have granted into Microsoft's claims
  challenge: 401, ``error="insufficient_claims", claims="…"``, so that the client steps up
  (docs/permissions.md#step-up-authentication-context).

The request runs in the thread's own context (not a copy of it), so what Django keeps per
context across requests, such as cache connections, is reused.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse

from ._moved import moved_names
from .conf import entra_settings
from .context import current_request_id, request_context

__all__ = ["REQUEST_ID_HEADER", "RequestContextMiddleware", "current_request_id"]

REQUEST_ID_HEADER = "X-Request-ID"
_INCOMING_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_FORBIDDEN = 403
_UNAUTHORIZED = 401


class RequestContextMiddleware:
    """Gives each request an id and a tenant context that ends with it; completes 403s.

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
        with request_context(request, request_id):
            response = self.get_response(request)
            if response.status_code == _FORBIDDEN:
                _complete_authorization_denial(request, response)
        response[REQUEST_ID_HEADER] = request_id
        return response

    def process_template_response(self, request: HttpRequest, response: Any) -> Any:
        """A DRF answer, before any other middleware sees it: a refusal that a stronger sign-in
        would cure becomes its 401 claims challenge here, so that every layer (the request
        log among them) sees the status the client gets."""
        if response.status_code == _FORBIDDEN and _needs_step_up(request, response):
            _complete_authorization_denial(request, response)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> Any:
        """A database outage in any view (the admin, plain Django views) is a 503 with
        ``Retry-After``, logged once per interval; anything else takes Django's course."""
        from .exceptions import (
            database_outage_log,
            database_unavailable_response,
            is_database_outage,
        )

        if not is_database_outage(exception):
            return None
        database_outage_log.report(exception)
        return database_unavailable_response()


_NOT_YET = object()


def _drf_denial(request: HttpRequest, response: HttpResponse) -> tuple[Any, str, Any] | None:
    """``(caller, reason, missing)`` of a 403 that DRF answered for an Entra caller, else
    ``None``; worked out once per response, for the step-up check and the completion."""
    found = getattr(response, "_entra_denial", _NOT_YET)
    if found is not _NOT_YET:
        return found
    found = None
    # DRF marks the answers of its exception handling; a view returning 403 itself is its own.
    if getattr(response, "exception", False):
        from .logging import request_principal
        from .permissions import denial

        caller = request_principal(request)
        if caller is not None:
            found = (caller, *denial(request))
    response._entra_denial = found
    return found


def _needs_step_up(request: HttpRequest, response: HttpResponse) -> bool:
    """A 403 of DRF's for an Entra caller that only lacked an authentication context."""
    from .permissions import MISSING_AUTH_CONTEXT

    found = _drf_denial(request, response)
    return found is not None and found[1] == MISSING_AUTH_CONTEXT


def _complete_authorization_denial(request: HttpRequest, response: HttpResponse) -> None:
    """A 403 that DRF answered for an Entra caller: name what was missing, audit it."""
    found = _drf_denial(request, response)
    if found is None:
        return
    from .permissions import MISSING_AUTH_CONTEXT
    from .signals import authorization_denied

    caller, reason, missing = found
    if reason == MISSING_AUTH_CONTEXT:
        _answer_claims_challenge(response, caller, missing)
    elif missing and "WWW-Authenticate" not in response:
        from .exceptions import insufficient_scope_challenge

        response["WWW-Authenticate"] = insufficient_scope_challenge(missing)
    match = getattr(request, "resolver_match", None)
    view_class = getattr(getattr(match, "func", None), "cls", None)
    authorization_denied.send_robust(
        sender=view_class or RequestContextMiddleware,
        request=request,
        reason=reason,
        missing=missing,
    )


def _answer_claims_challenge(
    response: HttpResponse, caller: Any, contexts: tuple[str, ...]
) -> None:
    """Make ``response`` the 401 claims challenge for the first of ``contexts``.

    The response is changed in place, so that the headers other layers set (security headers,
    cookies) stay. The body is the JSON error shape (docs/errors.md); the challenge names the
    authorize endpoint of the configured tenant, or of the caller's for a multi-tenant API.
    """
    from .exceptions import error_body, insufficient_claims_challenge
    from .permissions import auth_context_detail

    tenant_id = entra_settings.TENANT_ID
    if not tenant_id or entra_settings.is_multi_tenant:
        tenant_id = caller.tid
    body = error_body(auth_context_detail(contexts))
    response.status_code = _UNAUTHORIZED
    response["WWW-Authenticate"] = insufficient_claims_challenge(contexts[0], tenant_id)
    response["Content-Type"] = "application/json"
    response.content = json.dumps(body).encode()
    if hasattr(response, "data"):
        response.data = body  # a DRF Response: what tests and later layers read
    if response.has_header("Content-Length"):
        response["Content-Length"] = str(len(response.content))


# Names that moved to the optional modules of ``entra_auth.http``; the old paths keep working.
__getattr__ = moved_names(
    __name__,
    {
        "JsonErrorMiddleware": "entra_auth.http.errors",
        "ContentSecurityPolicyMiddleware": "entra_auth.http.csp",
        "is_api_path": "entra_auth.http.errors",
    },
)
