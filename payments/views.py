"""Views of the sample payments service."""

from __future__ import annotations

from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


class MeView(APIView):
    """``GET /api/me/``: the caller as the API sees it (any valid token)."""

    permission_classes = [IsAuthenticated]

    def get(self, request: Request) -> Response:
        user = request.user
        return Response(
            {
                "tid": user.tid,
                "oid": user.oid,
                "app_id": user.app_id,
                "scopes": sorted(user.scopes),
                "roles": sorted(user.roles),
                "is_app_only": user.is_app_only,
                "token_version": user.token_version,
                "name": user.name,
                "preferred_username": user.preferred_username,
            }
        )
