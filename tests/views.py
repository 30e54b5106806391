"""Views of the library tests' URLconf (``tests.urls``): the API an adopting project builds.

``MeView`` answers the caller as the API sees it; ``WidgetViewSet`` serves the tenant-owned
``Widget`` of ``tests.tenancy_app`` under ``per_action`` rules and ``SameTenant``, and records
its own audit event types; ``ApprovalView`` asks users for a step-up (an authentication
context); the failing views check that errors never leak internals.
"""

from __future__ import annotations

from django.core.exceptions import SuspiciousOperation
from django.db import OperationalError, transaction
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from entra_auth import audit
from entra_auth.permissions import (
    HasAppRole,
    HasScope,
    IsAppOnly,
    RequiresAuthContext,
    SameTenant,
    per_action,
)
from tests.tenancy_app.models import Widget

# Delegated scopes, a user role for renaming, application permissions for app-only callers.
CAN_READ = HasScope("Widgets.Read", "Widgets.Write") | (
    IsAppOnly & HasAppRole("Widgets.Read.All", "Widgets.ReadWrite.All")
)
CAN_WRITE = HasScope("Widgets.Write") | (IsAppOnly & HasAppRole("Widgets.ReadWrite.All"))
CAN_RENAME = (HasScope("Widgets.Write") & HasAppRole("Widgets.Admin")) | (
    IsAppOnly & HasAppRole("Widgets.ReadWrite.All")
)
# Approving needs a stronger sign-in from a user: the authentication context c1 on top of the
# scope. Applications are not asked for it: their tokens never carry one.
CAN_APPROVE = (HasScope("Widgets.Write") & RequiresAuthContext("c1")) | (
    IsAppOnly & HasAppRole("Widgets.ReadWrite.All")
)
# The host application's own audit event types.
WIDGET_CREATED = audit.register_event_type("widget_created", "Widget created")
WIDGET_RENAMED = audit.register_event_type("widget_renamed", "Widget renamed")


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


class WidgetSerializer(serializers.ModelSerializer):
    class Meta:
        model = Widget
        fields = ["id", "name"]


class WidgetViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Widgets of the caller's tenant: list, create, retrieve, rename.

    No tenant code beyond the scoped manager: another tenant's widget is a plain 404, and
    the audit log learns of it from entra_auth.
    """

    serializer_class = WidgetSerializer
    permission_classes = [
        per_action(list=CAN_READ, retrieve=CAN_READ, create=CAN_WRITE, rename=CAN_RENAME),
        SameTenant,
    ]

    def get_queryset(self):
        return Widget.objects.all()

    def create(self, request: Request) -> Response:
        serializer = WidgetSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with transaction.atomic():
            widget = serializer.save()
            # In the widget's transaction: the event is kept exactly when the widget is.
            audit.record(WIDGET_CREATED, request=request, object=widget)
        return Response(WidgetSerializer(widget).data, status=status.HTTP_201_CREATED)

    @action(detail=True, methods=["post"])
    def rename(self, request: Request, pk: str | None = None) -> Response:
        widget = self.get_object()
        serializer = WidgetSerializer(widget, data=request.data)
        serializer.is_valid(raise_exception=True)
        with transaction.atomic():
            serializer.save()
            audit.record(WIDGET_RENAMED, request=request, object=widget)
        return Response(serializer.data)


class ApprovalView(APIView):
    """``/api/approvals/``: reading as widgets are read; approving (POST) needs a step-up."""

    permission_classes = [per_action(safe=CAN_READ, post=CAN_APPROVE)]

    def get(self, request: Request) -> Response:
        return Response({"approvals": []})

    def post(self, request: Request) -> Response:
        return Response({"approved": True}, status=status.HTTP_201_CREATED)


def django_view_that_fails(request):
    raise RuntimeError("secret internals: SELECT * FROM tenancy_app_widget")


class DrfViewThatFails(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    def get(self, request):
        raise KeyError("secret internals: private key material")


DATABASE_DOWN = OperationalError('connection to server at "db" failed: secret internals')


def django_view_without_a_database(request):
    raise DATABASE_DOWN


class DrfViewWithoutADatabase(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    def get(self, request):
        raise DATABASE_DOWN


class DrfViewReadingTheBody(APIView):
    """Reads ``request.data``: Django's own limits on a body apply as it is read."""

    authentication_classes = []
    permission_classes = [AllowAny]

    def post(self, request):
        return Response({"keys": sorted(request.data)})


class DrfViewReadingTheRawBody(APIView):
    """Reads Django's ``request.body``, where ``DATA_UPLOAD_MAX_MEMORY_SIZE`` applies."""

    authentication_classes = []
    permission_classes = [AllowAny]

    def post(self, request):
        return Response({"bytes": len(request.body)})


class DrfViewThatSuspectsTheRequest(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    def get(self, request):
        raise SuspiciousOperation("secret internals: the Host header was forged")
