"""Per-request context: a request id on every response, and a fresh ``contextvars`` context.

The request runs in a copy of the caller's context, so whatever authentication sets for it
(the tenant, the request id) is gone when it ends, also on exceptions: a worker thread never
carries one request's tenant into the next.
"""

from __future__ import annotations

import contextvars
import re
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from .conf import entra_settings

REQUEST_ID_HEADER = "X-Request-ID"
_INCOMING_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "entra_auth_request_id", default=None
)


def current_request_id() -> str | None:
    """The id of the request being handled in this context, if any."""
    return _request_id.get()


class RequestContextMiddleware:
    """Runs each request in its own context and gives it ``request.request_id``.

    The id is a trusted proxy's ``X-Request-ID`` when ``ENTRA_AUTH["TRUST_REQUEST_ID_HEADER"]``
    is on (the proxy sets or strips it) and the value is short and plain; otherwise a new
    UUID, so clients cannot forge the ids that tie logs and audit events together.
    Put it first in ``MIDDLEWARE``.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return contextvars.copy_context().run(self._handle, request)

    def _handle(self, request: HttpRequest) -> HttpResponse:
        request_id = None
        if entra_settings.TRUST_REQUEST_ID_HEADER:
            incoming = request.headers.get(REQUEST_ID_HEADER, "")
            if _INCOMING_REQUEST_ID.fullmatch(incoming):
                request_id = incoming
        request_id = request_id or uuid.uuid4().hex
        request.request_id = request_id
        _request_id.set(request_id)
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request_id
        return response
