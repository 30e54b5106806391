"""A view that answers 403 itself, for ``test_minimal_adoption``."""

from django.urls import path
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView


class ForbiddenByTheView(APIView):
    permission_classes = [IsAuthenticated]

    def get(self, request):
        return Response({"detail": "Closed for business."}, status=403)


urlpatterns = [path("forbidden-by-the-view/", ForbiddenByTheView.as_view())]
