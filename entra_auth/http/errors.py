"""``JsonErrorMiddleware``: API routes answer errors in JSON, whatever ``DEBUG`` says."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from ..conf import entra_settings
from ..exceptions import INTERNAL_ERROR_DETAIL, RequestBodyTooLarge, json_error

ERROR_DETAILS = {
    400: "The request is invalid.",
    403: "You do not have permission to perform this action.",
    404: "Not found.",
    405: "Method not allowed.",
    413: RequestBodyTooLarge.default_detail,
}
_BODY_HEADERS = frozenset({"content-type", "content-length", "content-disposition"})


def is_api_path(path: str) -> bool:
    """Whether ``path`` is under ``ENTRA_AUTH["API_PATH_PREFIXES"]``."""
    return path.startswith(tuple(entra_settings.API_PATH_PREFIXES))


class JsonErrorMiddleware:
    """Error answers on API routes become ``{"detail": ..., "request_id": ...}``.

    Django renders 404s for unknown URLs and 500s from outside DRF views as HTML (with URL
    patterns and tracebacks when ``DEBUG`` is on). Under ``ENTRA_AUTH["API_PATH_PREFIXES"]``
    such answers are replaced by JSON that says nothing internal. Place it after
    ``SecurityMiddleware`` and ``ContentSecurityPolicyMiddleware``, so that they add their
    headers to its answers.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code < 400 or not is_api_path(request.path):
            return response
        if response.get("Content-Type", "").startswith("application/json"):
            return response
        detail = ERROR_DETAILS.get(response.status_code, INTERNAL_ERROR_DETAIL)
        if response.status_code < 500 and response.status_code not in ERROR_DETAILS:
            detail = "The request could not be completed."
        replacement = json_error(response.status_code, detail)
        # Keep what inner layers said (Allow, Retry-After, security headers), not the body's.
        for header, value in response.items():
            if header.lower() not in _BODY_HEADERS:
                replacement[header] = value
        return replacement
