from django.urls import path
from rest_framework.routers import SimpleRouter

from .openapi import docs_view, oauth2_redirect_view, schema_view
from .views import MeView, PaymentViewSet

router = SimpleRouter()
router.register("payments", PaymentViewSet, basename="payment")

urlpatterns = [
    path("me/", MeView.as_view(), name="me"),
    *router.urls,
    # OpenAPI 3, derived from the permission classes (docs/openapi.md); off: OPENAPI_ENABLED=0.
    path("schema/", schema_view, name="openapi-schema"),
    path("docs/", docs_view, name="openapi-docs"),
    path("docs/oauth2-redirect.html", oauth2_redirect_view, name="openapi-oauth2-redirect"),
]
