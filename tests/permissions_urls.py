"""URLconf for the permission tests: ``@pytest.mark.urls("tests.permissions_urls")``."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from tests.permissions_views import (
    COMPOSED_VIEWS,
    FallbackViewSet,
    MisconfiguredBareScopeView,
    MisconfiguredRulesViewSet,
    PaymentViewSet,
)

router = SimpleRouter()
router.register("payments", PaymentViewSet, basename="payment")
router.register("fallback", FallbackViewSet, basename="fallback")
router.register("misconfigured-rules", MisconfiguredRulesViewSet, basename="misconfigured-rules")

urlpatterns = [
    *router.urls,
    path("misconfigured/bare-scope/", MisconfiguredBareScopeView.as_view()),
    *(path(f"composed/{name}/", view.as_view()) for name, view in COMPOSED_VIEWS.items()),
]
