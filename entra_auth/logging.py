"""Structured logs: a JSON formatter that never lets a token through (docs/audit.md).

In ``LOGGING``::

    "formatters": {"json": {"()": "entra_auth.logging.JsonFormatter"}},

Every line carries the id of the request it was logged in. As a last line of defence, the
formatter redacts anything shaped like a JWT or a bearer credential. One line per request
comes from the optional ``entra_auth.http.request_log.RequestLogMiddleware``.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

from ._moved import moved_names
from .context import current_request_id
from .principal import EntraPrincipal

REDACTED = "[redacted]"
# A JWS/JWE starts with base64url('{"'), i.e. "eyJ"; a bearer credential follows its scheme.
_TOKEN_LIKE = re.compile(
    r"eyJ[A-Za-z0-9_\-]*(?:\.[A-Za-z0-9_\-]*)*|(?i:\bbearer\s+)[A-Za-z0-9\-._~+/]+=*"
)
# Attributes every LogRecord has: whatever else a record carries came through ``extra=``.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_JSON_SCALARS = (str, int, float, bool, type(None))


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


# RequestLogMiddleware moved to the optional entra_auth.http.request_log.
__getattr__ = moved_names(__name__, {"RequestLogMiddleware": "entra_auth.http.request_log"})
