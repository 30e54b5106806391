"""Swagger UI for an Entra-protected API, under the Content-Security-Policy it needs.

Part of the ``openapi`` extra, beside ``entra_auth.openapi`` (a module of its own: drf-spectacular's
views import DRF's, which load ``DEFAULT_SCHEMA_CLASS``, ``entra_auth.openapi``). See
docs/openapi.md.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured

try:
    from drf_spectacular.views import SpectacularSwaggerSplitView
except ImportError as exc:  # the optional extra is not installed
    raise ImproperlyConfigured(
        "entra_auth.openapi_views needs drf-spectacular: pip install 'drf-entra-auth[openapi]'."
    ) from exc

from .openapi import swagger_ui_policy


class SwaggerUIView(SpectacularSwaggerSplitView):
    """drf-spectacular's Swagger UI page (no inline script), answered with
    ``swagger_ui_policy()``.

    django-csp's middleware and ``entra_auth.http.csp`` keep a Content-Security-Policy a view
    has set, so API routes keep theirs while this page gets what Swagger UI needs. Route
    ``SpectacularSwaggerOauthRedirectView`` at ``oauth2-redirect.html`` beside it.
    """

    def get(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().get(request, *args, **kwargs)
        response["Content-Security-Policy"] = swagger_ui_policy()
        return response
