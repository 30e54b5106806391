"""The schema and Swagger UI of an Entra-protected API: errors in JSON like every API route,
and Swagger UI under the Content-Security-Policy it needs.

Part of the ``openapi`` extra, beside ``entra_auth.openapi`` (a module of its own: drf-spectacular's
views import DRF's, which load ``DEFAULT_SCHEMA_CLASS``, ``entra_auth.openapi``). See
docs/openapi.md.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured

try:
    from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
except ImportError as exc:  # the optional extra is not installed
    raise ImproperlyConfigured(
        "entra_auth.openapi_views needs drf-spectacular: pip install 'drf-entra-auth[openapi]'."
    ) from exc

from rest_framework.renderers import JSONRenderer

from .openapi import swagger_ui_policy


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

    http_method_names = ["get", "head", "options"]


class SwaggerUIView(_JsonErrors, SpectacularSwaggerSplitView):
    """drf-spectacular's Swagger UI page (no inline script), answered with
    ``swagger_ui_policy()``.

    django-csp's middleware and ``entra_auth.http.csp`` keep a Content-Security-Policy a view
    has set, so API routes keep theirs while this page gets what Swagger UI needs. Route
    ``SpectacularSwaggerOauthRedirectView`` at ``oauth2-redirect.html`` beside it.
    """

    # A page and its script: nothing to describe with OPTIONS.
    http_method_names = ["get", "head"]

    def get(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().get(request, *args, **kwargs)
        response["Content-Security-Policy"] = swagger_ui_policy()
        return response
