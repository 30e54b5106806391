"""``RequestBodyLimitMiddleware``: a request body over the cap is refused before it is buffered.

In ``MIDDLEWARE``, right after ``JsonErrorMiddleware``::

    "entra_auth.http.body_limit.RequestBodyLimitMiddleware",

On API paths (``ENTRA_AUTH["API_PATH_PREFIXES"]``) it answers, in the JSON error shape:

- ``413`` when ``Content-Length`` is over ``ENTRA_AUTH["MAX_REQUEST_BODY_BYTES"]``, before
  anything reads the body;
- ``400`` when ``Content-Length`` is not a non-negative whole number;
- ``413`` when a body without ``Content-Length`` (``Transfer-Encoding: chunked``, on a WSGI
  server that ends ``wsgi.input`` with the body, such as gunicorn) turns out longer than the
  cap: at most one byte more than the cap is read to find out.

Other paths (the admin, a project's own upload views) keep Django's own limits
(``DATA_UPLOAD_MAX_MEMORY_SIZE``, ``FILE_UPLOAD_MAX_MEMORY_SIZE``).
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from typing import Any

from django.core.handlers.wsgi import LimitedStream
from django.http import HttpRequest, HttpResponse

from ..conf import entra_settings
from ..exceptions import RequestBodyTooLarge, json_error
from .errors import is_api_path

__all__ = ["RequestBodyLimitMiddleware", "parse_content_length", "read_at_most"]

INVALID_CONTENT_LENGTH_DETAIL = "The Content-Length header must be a whole number of bytes."
# A Content-Length of more digits than this (an exabyte) is over any limit and is not
# converted at all: int() refuses strings of more than 4300 digits.
_MAX_LENGTH_DIGITS = 18
_READ_CHUNK_BYTES = 64 * 1024


def parse_content_length(value: str) -> int:
    """``Content-Length`` as a number of bytes: ASCII digits only (RFC 9110 §8.6), else
    ``ValueError``. A value of more digits than any limit needs is ``sys.maxsize``."""
    if not (value.isascii() and value.isdigit()):
        raise ValueError("Content-Length must be ASCII digits")
    digits = value.lstrip("0")
    if len(digits) > _MAX_LENGTH_DIGITS:
        return sys.maxsize
    return int(digits or "0")


def read_at_most(stream: Any, size: int) -> bytes:
    """Up to ``size`` bytes of ``stream``: fewer only when it ends first; never more."""
    chunks = []
    remaining = size
    while remaining > 0:
        chunk = stream.read(min(remaining, _READ_CHUNK_BYTES))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


class RequestBodyLimitMiddleware:
    """Refuses, on API paths, a body over ``MAX_REQUEST_BODY_BYTES`` before it is buffered.

    Place it right after ``JsonErrorMiddleware``: its answers are already JSON, and the
    request id and security headers of the layers above are added to them.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not is_api_path(request.path):
            return self.get_response(request)
        limit = entra_settings.MAX_REQUEST_BODY_BYTES
        declared = request.META.get("CONTENT_LENGTH")
        # PEP 3333: CONTENT_LENGTH "may be empty or absent"; both mean no length was given.
        if declared:
            try:
                length = parse_content_length(declared)
            except ValueError:
                return json_error(400, INVALID_CONTENT_LENGTH_DETAIL)
            if length > limit:
                return json_error(413, RequestBodyTooLarge.default_detail)
            return self.get_response(request)
        if request.META.get("wsgi.input_terminated") and "wsgi.input" in request.META:
            refusal = self._take_unsized_body(request, limit)
            if refusal is not None:
                return refusal
        return self.get_response(request)

    @staticmethod
    def _take_unsized_body(request: HttpRequest, limit: int) -> HttpResponse | None:
        """A body sent without ``Content-Length``: refused over ``limit``, else made the
        request's body.

        Django's WSGIRequest reads a body only up to CONTENT_LENGTH: without it (a chunked
        request, as gunicorn passes it on) the limit is 0, so Django neither buffers nor sees
        the body: ``request.body`` is ``b""`` and DRF parses no data at all. Such a body
        cannot fill memory, but is silently dropped. A server that sets
        ``wsgi.input_terminated`` ends ``wsgi.input`` where the body ends, so it can be read
        here, through ``read_at_most``, which stops one byte past the limit: a longer body is
        a 413 with nothing buffered beyond that; a body within the limit becomes the
        request's body with its length, as if the client had sent ``Content-Length``.
        Without ``wsgi.input_terminated`` (Django's runserver), reading past the declared
        length could block on the connection: the body is left alone, as Django leaves it.
        """
        body = read_at_most(request.META["wsgi.input"], limit + 1)
        if len(body) > limit:
            return json_error(413, RequestBodyTooLarge.default_detail)
        if body:
            request.META["wsgi.input"] = io.BytesIO(body)
            request.META["CONTENT_LENGTH"] = str(len(body))
            # What WSGIRequest would have built from a Content-Length: Django reads the body
            # through this stream (request.body, request.read(), DRF's parsers).
            request._stream = LimitedStream(io.BytesIO(body), len(body))
        return None
