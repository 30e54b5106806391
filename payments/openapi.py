"""The sample's self-description: ``GET /api/schema/`` and the Swagger UI at ``/api/docs/``.

Both are public while ``settings.OPENAPI_ENABLED`` is on, and answer 404 when it is off.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from drf_spectacular.extensions import OpenApiSerializerFieldExtension, OpenApiViewExtension
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers

from entra_auth.openapi_views import OAuth2RedirectView, SchemaView, SwaggerUIView


class MoneyFieldSchema(OpenApiSerializerFieldExtension):
    """``MoneyField``: a decimal amount as a string with the currency's minor-unit digits."""

    target_class = "payments.serializers.MoneyField"

    def map_serializer_field(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        return {"type": "string", "format": "decimal", "readOnly": True, "example": "12.50"}


ME = inline_serializer(
    "Me",
    {
        "tid": serializers.CharField(),
        "oid": serializers.CharField(),
        "app_id": serializers.CharField(),
        "scopes": serializers.ListField(child=serializers.CharField()),
        "roles": serializers.ListField(child=serializers.CharField()),
        "is_app_only": serializers.BooleanField(),
        "token_version": serializers.CharField(),
        "name": serializers.CharField(allow_null=True),
        "preferred_username": serializers.CharField(allow_null=True),
    },
)


class MeViewSchema(OpenApiViewExtension):
    """``GET /api/me/`` answers the caller's claims (an APIView without a serializer)."""

    target_class = "payments.views.MeView"

    def view_replacement(self) -> Any:
        class Described(self.target_class):  # type: ignore[name-defined,misc]
            @extend_schema(responses=ME)
            def get(self, request: Any) -> Any:
                return super().get(request)

        return Described


def _switchable(view: Callable[..., Any]) -> Callable[..., Any]:
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not settings.OPENAPI_ENABLED:
            raise Http404()
        return view(request, *args, **kwargs)

    wrapped.csrf_exempt = True  # type: ignore[attr-defined]
    return wrapped


schema_view = _switchable(SchemaView.as_view())
# Swagger UI, with the policy it needs instead of the API routes' ``default-src 'none'``.
docs_view = _switchable(SwaggerUIView.as_view(url_name="openapi-schema"))
# Swagger UI sends Entra the redirect URI <its own folder>/oauth2-redirect.html, here
# /api/docs/oauth2-redirect.html: the URI to register. Its page hands the code back to Swagger UI.
oauth2_redirect_view = _switchable(OAuth2RedirectView.as_view())
