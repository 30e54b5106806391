"""Routes that fail on purpose, beside the project's, for the error-handling tests."""

from django.urls import include, path
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView


def django_view_that_fails(request):
    raise RuntimeError("secret internals: SELECT * FROM payments_payment")


class DrfViewThatFails(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    def get(self, request):
        raise KeyError("secret internals: private key material")


urlpatterns = [
    path("api/fails/django/", django_view_that_fails),
    path("api/fails/drf/", DrfViewThatFails.as_view()),
    path("", include("project.urls")),
]
