"""``RequestLogMiddleware``: one structured log line per request (docs/audit.md).

In ``MIDDLEWARE``, right after ``RequestContextMiddleware``::

    "entra_auth.http.request_log.RequestLogMiddleware",

Request lines hold the method, path (never the query string), status, duration, client IP and
the caller's tenant, ``oid`` and app id; never a header, a token or a claim beyond those.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from ..client_address import client_ip
from ..context import current_request_id
from ..logging import redact_tokens, request_principal

REQUEST_LOGGER_NAME = "entra_auth.requests"
SERVER_ERROR_STATUS = 500

request_logger = logging.getLogger(REQUEST_LOGGER_NAME)


class RequestLogMiddleware:
    """Logs one line per request on ``entra_auth.requests`` (errors at ERROR, the rest at INFO).

    Place it right after ``RequestContextMiddleware``, so that the request id and the
    caller are known, and the duration covers every other layer.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        duration_ms = round((time.perf_counter() - started) * 1000, 1)
        caller = request_principal(request)
        path = redact_tokens(request.path)
        fields = {
            "request_id": current_request_id() or getattr(request, "request_id", None),
            "method": request.method,
            "path": path,
            "status": response.status_code,
            "duration_ms": duration_ms,
            "client_ip": client_ip(request),
            "tenant_id": caller.tid if caller else None,
            "oid": caller.oid if caller else None,
            "app_id": caller.app_id if caller else None,
        }
        level = logging.ERROR if response.status_code >= SERVER_ERROR_STATUS else logging.INFO
        request_logger.log(
            level,
            "%s %s %s %.1fms",
            request.method,
            path,
            response.status_code,
            duration_ms,
            extra=fields,
        )
        return response
