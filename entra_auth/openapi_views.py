"""The schema and Swagger UI of an Entra-protected API: errors in JSON like every API route,
Swagger UI under the Content-Security-Policy it needs, and the page Entra's sign-in returns to.

Part of the ``openapi`` extra, beside ``entra_auth.openapi`` (a module of its own: drf-spectacular's
views import DRF's, which load ``DEFAULT_SCHEMA_CLASS``, ``entra_auth.openapi``). See
docs/openapi.md.
"""

from __future__ import annotations

from typing import Any

from ._extras import missing_extra

try:
    from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
except ImportError as exc:  # the optional extra is not installed
    raise missing_extra(__name__, "drf-spectacular", "openapi") from exc

from django.http import HttpRequest, HttpResponse
from django.templatetags.static import static
from django.utils.html import escape
from django.views import View
from rest_framework.renderers import JSONRenderer

from .openapi import swagger_ui_policy

# Swagger UI's sign-in opens Entra in a popup whose last page hands the code back to
# window.opener. Django's default Cross-Origin-Opener-Policy, same-origin, cuts that link as
# soon as the popup visits Entra: the page keeps its popups, and the redirect page imposes
# nothing on the window it runs in.
SWAGGER_UI_OPENER_POLICY = "same-origin-allow-popups"
REDIRECT_OPENER_POLICY = "unsafe-none"
REDIRECT_SCRIPT = "drf_spectacular_sidecar/swagger-ui-dist/oauth2-redirect.js"
REDIRECT_POLICY = (
    "default-src 'none'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'none'"
)


class _JsonErrors:
    """Refusals in JSON (``{detail, request_id}``), whatever the view's own renderers.

    drf-spectacular's views render with YAML or HTML templates, so a ``405`` or a bad
    ``?format=`` would answer in those, and an ``OPTIONS`` of the Swagger UI page fails to
    render at all.
    """

    def handle_exception(self, exc: Exception) -> Any:
        self.request.accepted_renderer = JSONRenderer()  # type: ignore[attr-defined]
        self.request.accepted_media_type = JSONRenderer.media_type  # type: ignore[attr-defined]
        return super().handle_exception(exc)  # type: ignore[misc]


class SchemaView(_JsonErrors, SpectacularAPIView):
    """drf-spectacular's schema view (YAML; ``?format=json``), refusing in JSON."""

    http_method_names = ["get", "head"]


class SwaggerUIView(_JsonErrors, SpectacularSwaggerSplitView):
    """drf-spectacular's Swagger UI page (no inline script), answered with
    ``swagger_ui_policy()``.

    django-csp's middleware and ``entra_auth.http.csp`` keep a Content-Security-Policy a view
    has set, so API routes keep theirs while this page gets what Swagger UI needs. Route
    ``OAuth2RedirectView`` at ``oauth2-redirect.html`` beside it.
    """

    # A page and its script: nothing to describe with OPTIONS.
    http_method_names = ["get", "head"]

    def get(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().get(request, *args, **kwargs)
        response["Content-Security-Policy"] = swagger_ui_policy()
        response["Cross-Origin-Opener-Policy"] = SWAGGER_UI_OPENER_POLICY
        return response

    def _get_schema_auth_names(self) -> list[str]:
        # An extension may name several schemes (the development bearer scheme beside oauth2).
        names: list[str] = []
        for name in super()._get_schema_auth_names():
            names.extend([name] if isinstance(name, str) else name)
        return names


class OAuth2RedirectView(View):
    """The page Entra redirects Swagger UI's sign-in popup to: ``oauth2-redirect.html``.

    Route it beside ``SwaggerUIView`` (Swagger UI sends ``<its folder>/oauth2-redirect.html``
    as the redirect URI, the one to register). It runs Swagger UI's own redirect script, from
    drf-spectacular-sidecar's static files, which hands the code in its query back to the
    page that opened the popup. The code never reaches a log line or another site: no
    referrer, not cached.
    """

    http_method_names = ["get", "head"]

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        script = escape(static(REDIRECT_SCRIPT))
        page = (
            '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            "<title>Signing in</title></head>\n"
            f'<body><script src="{script}"></script></body></html>\n'
        )
        response = HttpResponse(page, content_type="text/html; charset=utf-8")
        response["Content-Security-Policy"] = REDIRECT_POLICY
        response["Cross-Origin-Opener-Policy"] = REDIRECT_OPENER_POLICY
        response["Referrer-Policy"] = "no-referrer"
        response["Cache-Control"] = "no-store"
        return response
