"""URLconf of the library tests: the admin, health probes, a small API and failing views."""

from django.contrib import admin
from django.urls import include, path
from rest_framework.routers import SimpleRouter

from tests.views import (
    ApprovalView,
    DrfViewReadingTheBody,
    DrfViewReadingTheRawBody,
    DrfViewThatFails,
    DrfViewThatSuspectsTheRequest,
    DrfViewWithoutADatabase,
    MeView,
    WidgetViewSet,
    django_view_that_fails,
    django_view_without_a_database,
)

router = SimpleRouter()
router.register("widgets", WidgetViewSet, basename="widget")

urlpatterns = [
    path("admin/", admin.site.urls),
    path("health/", include("entra_auth.http.urls")),
    path("api/me/", MeView.as_view(), name="me"),
    path("api/approvals/", ApprovalView.as_view()),
    path("api/fails/django/", django_view_that_fails),
    path("api/fails/drf/", DrfViewThatFails.as_view()),
    path("api/fails/database/", DrfViewWithoutADatabase.as_view()),
    path("api/fails/suspicious/", DrfViewThatSuspectsTheRequest.as_view()),
    path("api/echo/", DrfViewReadingTheBody.as_view()),
    path("api/raw-body/", DrfViewReadingTheRawBody.as_view()),
    path("pages/fails/database/", django_view_without_a_database),
    path("api/", include(router.urls)),
]
