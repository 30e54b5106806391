from django.contrib import admin
from django.urls import include, path

from entra_auth.metrics import metrics_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("health/", include("entra_auth.http.urls")),
    path("api/", include("payments.urls")),
    # Prometheus; a 404 unless METRICS_TOKEN is set (docs/metrics.md).
    path("metrics", metrics_view, name="metrics"),
]
