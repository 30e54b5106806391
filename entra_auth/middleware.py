"""Request ids: one per request, on every response (``X-Request-ID``) and in error bodies."""

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


class RequestIdMiddleware:
    """Assigns ``request.request_id``: a trusted proxy's ``X-Request-ID`` or a new UUID.

    An incoming id is used only when ``ENTRA_AUTH["TRUST_REQUEST_ID_HEADER"]`` is on (the proxy
    in front sets or strips it) and it is short and plain; otherwise clients could forge ids.
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
            response = self.get_response(request)
        finally:
            _request_id.reset(token)
        response[REQUEST_ID_HEADER] = request_id
        return response
