"""The project's routes plus the bench baselines, under ``/api/`` like the protected route so
that every middleware treats them alike."""

from django.urls import path

from project.urls import urlpatterns as project_urlpatterns

from .paths import OPEN_PATH, UNTHROTTLED_PATH
from .views import OpenPaymentViewSet, UnthrottledPaymentViewSet

urlpatterns = [
    path(OPEN_PATH.lstrip("/"), OpenPaymentViewSet.as_view({"get": "list"})),
    path(UNTHROTTLED_PATH.lstrip("/"), UnthrottledPaymentViewSet.as_view({"get": "list"})),
    *project_urlpatterns,
]
