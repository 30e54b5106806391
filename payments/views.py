"""Views of the sample payments service: every rule comes from ``entra_auth``'s public API."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.utils.dateparse import parse_datetime
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.permissions import IsAuthenticated
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
# A user's refund may also need a stronger sign-in: the Conditional Access authentication
# context in settings.PAYMENTS_REFUND_AUTH_CONTEXT, read on every request (unset: none).
# Applications never carry one (docs/permissions.md#step-up-authentication-context).
REFUND_STEP_UP = RequiresAuthContext.from_setting("PAYMENTS_REFUND_AUTH_CONTEXT")
CAN_REFUND = (HasScope("Payments.Write") & HasAppRole("Payments.Admin") & REFUND_STEP_UP) | (
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


DATE_HELP = "Use an ISO 8601 date-time with a time zone, e.g. 2026-01-31T00:00:00Z."
# A day inside what Python's datetime holds: converting the moment to UTC, or to the database
# connection's time zone, can then never overflow.
EARLIEST_MOMENT = datetime.min.replace(tzinfo=UTC) + timedelta(days=1)
LATEST_MOMENT = datetime.max.replace(tzinfo=UTC) - timedelta(days=1)
DATE_RANGE_HELP = "Use a date-time from 0001-01-02T00:00:00Z to 9999-12-30T23:59:59Z."
MAX_DATE_LENGTH = 64
PAGE_SIZE_HELP = f"Use a whole number of 1 or more; at most {MAX_PAGE_SIZE} are given."
CURSOR_HELP = "Invalid cursor: use a next or previous link as the API gave it."


class InvalidMoment(ValueError):
    """A date-time the API cannot compare with ``created_at``; its text says what to send."""


def capped_whole_number(text: str, cap: int) -> int:
    """ASCII digits as a number, at most ``cap``; a long number is not converted at all.
    Anything else is a ``ValueError``."""
    if not (text.isascii() and text.isdigit()):
        raise ValueError("not a whole number")
    digits = text.lstrip("0") or "0"
    if len(digits) > len(str(cap)):
        return cap
    return min(int(digits), cap)


def parse_moment(value: str) -> datetime:
    """An ISO 8601 date-time with a time zone, in UTC and within what the database compares."""
    # parse_datetime takes any Unicode digit and control characters: plain ASCII text only.
    if len(value) > MAX_DATE_LENGTH or not value.isascii() or not value.isprintable():
        raise InvalidMoment(DATE_HELP)
    try:
        moment = parse_datetime(value)
    except ValueError:  # a field out of range: month 13, hour 24, an offset of 24 hours or more
        moment = None
    if moment is None or moment.utcoffset() is None:
        raise InvalidMoment(DATE_HELP)
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+14:00 is in year 0 in UTC
        raise InvalidMoment(DATE_RANGE_HELP) from None
    if not EARLIEST_MOMENT <= moment <= LATEST_MOMENT:
        raise InvalidMoment(DATE_RANGE_HELP)
    return moment


# A refund that loses a race to another one reads the payment again at most this often.
REFUND_ATTEMPTS = 5


def _apply_refund(payment: Payment, amount: Any) -> Payment:
    """Add ``amount`` to the payment's refunds with one conditional UPDATE per attempt.

    The new total is computed in exact decimals and written only if the refunded amount is
    still the one read (compare-and-swap), so two refunds can never both fit into what one
    leaves: on every database, without row locks (which SQLite ignores) and without SQL
    arithmetic on decimals (which SQLite does in floating point). A refund that would exceed
    the captured amount is refused with 409 and changes nothing. The first attempt uses the
    payment as the view read it; an attempt that lost a race reads it again.
    """
    for attempt in range(REFUND_ATTEMPTS):
        if attempt:
            payment = get_object_or_404(Payment.objects.all(), pk=payment.pk)
        remaining = payment.amount - payment.refunded_amount
        if amount > remaining:
            raise RefundExceedsPayment(
                "The refund would exceed the captured amount: at most "
                f"{remaining.quantize(quantum(payment.currency))} {payment.currency} "
                "remains refundable."
            )
        refunded_amount = payment.refunded_amount + amount
        new_status = (
            Payment.Status.REFUNDED
            if refunded_amount == payment.amount
            else Payment.Status.PARTIALLY_REFUNDED
        )
        applied = Payment.objects.filter(
            pk=payment.pk, refunded_amount=payment.refunded_amount
        ).update(refunded_amount=refunded_amount, status=new_status)
        if applied:
            payment.refunded_amount, payment.status = refunded_amount, new_status
            return payment
    raise RefundContended()


class RefundContended(APIException):
    """Refunds of one payment kept overtaking this one: the client may retry it as it is."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "Other refunds of this payment were applied meanwhile. Retry the request."
    default_code = "refund_contended"


class PaymentPagination(CursorPagination):
    """Newest first, stable under inserts (cursor, not page numbers).

    Its parameters are checked like the filters: DRF would answer a ``page_size`` that is no
    number with the default size, a cursor that does not decode with a 404, and one whose
    position is no date-time the database can compare with a 500. Each is a 400 naming it.
    """

    ordering = ("-created_at", "-id")
    page_size = PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE

    def get_page_size(self, request: Request) -> int:
        wanted = request.query_params.get(self.page_size_query_param)
        if wanted is None:
            return self.page_size
        try:
            size = capped_whole_number(wanted, self.max_page_size)
        except ValueError:
            size = 0
        if size == 0:
            raise ValidationError({self.page_size_query_param: [PAGE_SIZE_HELP]})
        return size

    def decode_cursor(self, request: Request) -> Cursor | None:
        encoded = request.query_params.get(self.cursor_query_param)
        if encoded is None:
            return None
        try:
            return self._read_cursor(encoded)
        except ValueError:
            raise ValidationError({self.cursor_query_param: [CURSOR_HELP]}) from None

    def _read_cursor(self, encoded: str) -> Cursor:
        """DRF's cursor, read strictly: base64 of ``o=<offset>&r=1&p=<position>`` (each part
        optional, at most once); anything else is a ``ValueError``.

        DRF's own reading skips what is not base64 (``%%%`` is the first page) and hands the
        position to the query as it is; here it must be a date-time the database can compare.
        """
        # binascii.Error and the Unicode errors are ValueErrors.
        text = base64.b64decode(encoded.encode("ascii"), validate=True).decode("ascii")
        tokens = parse_qs(text, keep_blank_values=True, strict_parsing=True, max_num_fields=3)
        if not tokens or not set(tokens) <= {"o", "r", "p"}:
            raise ValueError("not a cursor of this API")
        if any(len(values) != 1 for values in tokens.values()):
            raise ValueError("a part given twice")
        # Capped as DRF caps it.
        offset = capped_whole_number(tokens.get("o", ["0"])[0], self.offset_cutoff)
        reverse = tokens.get("r", ["0"])[0]
        if reverse not in {"0", "1"}:
            raise ValueError("the direction is not 0 or 1")
        position = tokens.get("p", [None])[0]
        if position is not None:
            # Compared with created_at; DRF writes it as str() of the row's value, in UTC.
            position = str(parse_moment(position))
        return Cursor(offset=offset, reverse=reverse == "1", position=position)


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
                moment = parse_moment(value)
            except InvalidMoment as exc:
                errors[name] = [str(exc)]
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
            audit.record(PAYMENT_CREATED, request=request, object=payment)
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
            refunded = _apply_refund(payment, amount)
            refund = Refund.objects.create(
                payment=refunded,
                amount=amount,
                created_by_oid=request.user.oid,
                created_by_app_id=request.user.app_id,
            )
            audit.record(PAYMENT_REFUNDED, request=request, object=refunded)
            return Response(RefundSerializer(refund).data, status=status.HTTP_201_CREATED)

        return idempotent(request, act)
