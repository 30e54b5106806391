from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("health/", include("entra_auth.http.urls")),
    path("api/", include("payments.urls")),
]
