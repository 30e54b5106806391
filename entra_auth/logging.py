"""Structured logs: a JSON formatter and one log line per request (SPEC 12).

In ``LOGGING``::

    "formatters": {"json": {"()": "entra_auth.logging.JsonFormatter"}},

and in ``MIDDLEWARE``, right after ``RequestContextMiddleware``::

    "entra_auth.logging.RequestLogMiddleware",

Every line carries the request id of the request it was logged in. Request lines hold the
method, path (never the query string), status, duration, client IP and the caller's tenant,
``oid`` and app id; never a header, a token or a claim beyond those. As a last line of
defence, the formatter redacts anything shaped like a JWT or a bearer credential.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from django.http import HttpRequest, HttpResponse

from .client_address import client_ip
from .middleware import current_request_id
from .principal import EntraPrincipal

REQUEST_LOGGER_NAME = "entra_auth.requests"
REDACTED = "[redacted]"
SERVER_ERROR_STATUS = 500
# A JWS/JWE starts with base64url('{"'), i.e. "eyJ"; a bearer credential follows its scheme.
_TOKEN_LIKE = re.compile(
    r"eyJ[A-Za-z0-9_\-]*(?:\.[A-Za-z0-9_\-]*)*|(?i:\bbearer\s+)[A-Za-z0-9\-._~+/]+=*"
)
# Attributes every LogRecord has: whatever else a record carries came through ``extra=``.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_JSON_SCALARS = (str, int, float, bool, type(None))

request_logger = logging.getLogger(REQUEST_LOGGER_NAME)


def redact_tokens(text: str) -> str:
    """``text`` with every JWT-shaped string and bearer credential replaced by ``[redacted]``."""
    return _TOKEN_LIKE.sub(REDACTED, text)


def request_principal(request: Any) -> EntraPrincipal | None:
    """The Entra caller of a Django request, once DRF authenticated it; None otherwise.

    Django's lazy session user is never evaluated here (that could cost a query).
    """
    user = vars(request).get("user")
    return user if issubclass(type(user), EntraPrincipal) else None


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, the ``extra`` fields.

    Extra fields that are not JSON scalars (Django adds the request object to some records)
    are left out rather than turned into text.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = current_request_id()
        if request_id is not None:
            entry["request_id"] = request_id
        for name, value in vars(record).items():
            if name not in _STANDARD_ATTRIBUTES and isinstance(value, _JSON_SCALARS):
                entry[name] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return redact_tokens(json.dumps(entry, ensure_ascii=False, default=str))


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
