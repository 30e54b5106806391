"""Views of the sample payments service: every rule comes from ``entra_auth``'s public API."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.utils.dateparse import parse_datetime
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from entra_auth import audit
from entra_auth.permissions import HasAppRole, HasScope, IsAppOnly, SameTenant, per_action

from .currencies import quantum
from .idempotency import idempotent
from .models import Payment, Refund
from .serializers import (
    PaymentCreateSerializer,
    PaymentSerializer,
    RefundCreateSerializer,
    RefundSerializer,
)

# Delegated scopes, user role Payments.Admin, application permissions for apps.
CAN_READ = HasScope("Payments.Read", "Payments.Write") | (
    IsAppOnly & HasAppRole("Payments.Read.All", "Payments.ReadWrite.All")
)
CAN_WRITE = HasScope("Payments.Write") | (IsAppOnly & HasAppRole("Payments.ReadWrite.All"))
CAN_REFUND = (HasScope("Payments.Write") & HasAppRole("Payments.Admin")) | (
    IsAppOnly & HasAppRole("Payments.ReadWrite.All")
)
PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
# The sensitive actions of the sample, in the audit log.
PAYMENT_CREATED = audit.register_event_type("payment_created", "Payment created")
PAYMENT_REFUNDED = audit.register_event_type("payment_refunded", "Payment refunded")


class RefundExceedsPayment(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The refund would exceed the captured amount."
    default_code = "refund_exceeds_payment"


class PaymentPagination(CursorPagination):
    """Newest first, stable under inserts (cursor, not page numbers)."""

    ordering = ("-created_at", "-id")
    page_size = PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE


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


class PaymentViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Payments of the caller's tenant: list, create, retrieve, refund."""

    serializer_class = PaymentSerializer
    pagination_class = PaymentPagination
    permission_classes = [
        per_action(list=CAN_READ, retrieve=CAN_READ, create=CAN_WRITE, refund=CAN_REFUND),
        SameTenant,
    ]

    def get_queryset(self) -> QuerySet[Payment]:
        # The tenant-scoped default manager: only the caller's tenant's rows.
        payments = Payment.objects.all()
        if self.action == "list":
            payments = self._filter(payments, self.request.query_params)
        return payments

    @staticmethod
    def _filter(payments: QuerySet[Payment], params: Any) -> QuerySet[Payment]:
        errors: dict[str, list[str]] = {}
        wanted_status = params.get("status")
        if wanted_status is not None:
            if wanted_status not in Payment.Status.values:
                errors["status"] = [f"Use one of: {', '.join(Payment.Status.values)}."]
            payments = payments.filter(status=wanted_status)
        for name, lookup in (
            ("created_after", "created_at__gte"),
            ("created_before", "created_at__lt"),
        ):
            value = params.get(name)
            if value is None:
                continue
            try:
                moment = parse_datetime(value)
            except ValueError:
                moment = None
            if moment is None or moment.tzinfo is None:
                errors[name] = [
                    "Use an ISO 8601 date-time with a time zone, e.g. 2026-01-31T00:00:00Z."
                ]
                continue
            payments = payments.filter(**{lookup: moment})
        if errors:
            raise ValidationError(errors)
        return payments

    def create(self, request: Request) -> Response:
        serializer = PaymentCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)

        def act() -> Response:
            payment = Payment.objects.create(
                **serializer.validated_data,
                created_by_oid=request.user.oid,
                created_by_app_id=request.user.app_id,
            )
            # In the payment's transaction: the event is kept exactly when the payment is.
            audit.record(PAYMENT_CREATED, request=request, object_id=payment.pk)
            return Response(PaymentSerializer(payment).data, status=status.HTTP_201_CREATED)

        return idempotent(request, act)

    @action(detail=True, methods=["post"])
    def refund(self, request: Request, pk: str | None = None) -> Response:
        """Refund part or all of a payment; refunds never exceed the captured amount."""
        payment = self.get_object()
        serializer = RefundCreateSerializer(data=request.data, context={"payment": payment})
        serializer.is_valid(raise_exception=True)
        amount = serializer.validated_data["amount"]

        def act() -> Response:
            # Lock the payment row: concurrent refunds are applied one after another.
            locked = get_object_or_404(Payment.objects.select_for_update(), pk=payment.pk)
            remaining = locked.amount - locked.refunded_amount
            if amount > remaining:
                raise RefundExceedsPayment(
                    "The refund would exceed the captured amount: at most "
                    f"{remaining.quantize(quantum(locked.currency))} {locked.currency} "
                    "remains refundable."
                )
            refund = Refund.objects.create(
                payment=locked,
                amount=amount,
                created_by_oid=request.user.oid,
                created_by_app_id=request.user.app_id,
            )
            new_status = (
                Payment.Status.REFUNDED
                if amount == remaining
                else Payment.Status.PARTIALLY_REFUNDED
            )
            # The row is locked: write the exact decimal (an SQL sum may go through floats).
            Payment.objects.filter(pk=locked.pk).update(
                refunded_amount=locked.refunded_amount + amount, status=new_status
            )
            audit.record(PAYMENT_REFUNDED, request=request, object_id=locked.pk)
            return Response(RefundSerializer(refund).data, status=status.HTTP_201_CREATED)

        return idempotent(request, act)
