"""Health routes: ``path("health/", include("entra_auth.http.urls"))`` serves
``/health/live`` and ``/health/ready``."""

from django.urls import path

from . import health

urlpatterns = [
    path("live", health.live, name="health-live"),
    path("ready", health.ready, name="health-ready"),
]
