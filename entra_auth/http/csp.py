"""``ContentSecurityPolicyMiddleware``: django-csp with the strictest policy on API routes.

Needs the ``csp`` extra (``pip install drf-entra-auth[csp]``) and ``"csp"`` in
``INSTALLED_APPS``.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from .._extras import missing_extra

try:
    from csp.constants import HEADER as CSP_HEADER
    from csp.middleware import CSPMiddleware
except ImportError as exc:  # the optional extra is not installed
    raise missing_extra(__name__, "django-csp", "csp") from exc

from .errors import is_api_path

STRICT_API_POLICY = "default-src 'none'; frame-ancestors 'none'"


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    """django-csp, with ``default-src 'none'; frame-ancestors 'none'`` on API routes.

    JSON needs nothing loaded. Other routes (the admin) get the project's
    ``CONTENT_SECURITY_POLICY``. API answers get the strict policy even for the 404/500 pages
    django-csp leaves bare when ``DEBUG`` is on.
    """

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if is_api_path(request.path) and CSP_HEADER not in response:
            response[CSP_HEADER] = STRICT_API_POLICY
        return super().process_response(request, response)
