"""``guard_wsgi_application``: a request Django cannot even build is a 400, not a 500.

Django builds the request object before any middleware runs, and a few client inputs make
that fail: a ``Content-Type`` charset naming a codec that is no text encoding (``rot13``)
with a ``%`` escape in the query string, or more query fields than
``DATA_UPLOAD_MAX_NUMBER_FIELDS`` together with any charset. The exception then escapes
Django's handler and the WSGI server answers its own 500. Wrapped here, such a request
answers a JSON 400 instead::

    application = guard_wsgi_application(get_wsgi_application())
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from django.core.exceptions import SuspiciousOperation

BAD_REQUEST_BODY = json.dumps(
    {"detail": "The request is invalid.", "request_id": None}, separators=(",", ":")
).encode()
# Raised by Django while it builds a request from what the client sent; a failure once the
# answer has begun, or of any other kind, is the server's and keeps its course.
_CLIENT_INPUT_ERRORS = (LookupError, SuspiciousOperation)


def guard_wsgi_application(application: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a WSGI application so that the client inputs Django fails on are a 400."""

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = False

        def tracking_start_response(*args: Any, **kwargs: Any) -> Any:
            nonlocal started
            started = True
            return start_response(*args, **kwargs)

        try:
            return application(environ, tracking_start_response)
        except _CLIENT_INPUT_ERRORS:
            if started:
                raise
            start_response(
                "400 Bad Request",
                [
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(BAD_REQUEST_BODY))),
                    ("X-Content-Type-Options", "nosniff"),
                ],
            )
            return [BAD_REQUEST_BODY]

    return guarded
