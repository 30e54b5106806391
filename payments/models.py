"""Payments and refunds, owned by tenants: no query can cross tenants (entra_auth.tenancy)."""

from __future__ import annotations

import uuid

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import F, Q

from entra_auth.tenancy import TenantOwnedModel

AMOUNT_MAX_DIGITS = 18
AMOUNT_DECIMAL_PLACES = 3
IDEMPOTENCY_KEY_MAX_LENGTH = 255


def _amount_field(**kwargs) -> models.DecimalField:
    return models.DecimalField(
        max_digits=AMOUNT_MAX_DIGITS, decimal_places=AMOUNT_DECIMAL_PLACES, **kwargs
    )


class Payment(TenantOwnedModel):
    """A captured payment. ``refunded_amount`` changes only by compare-and-swap, under a
    constraint."""

    class Status(models.TextChoices):
        CAPTURED = "captured"
        PARTIALLY_REFUNDED = "partially_refunded"
        REFUNDED = "refunded"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    amount = _amount_field()
    currency = models.CharField(max_length=3)
    description = models.CharField(max_length=500, blank=True, default="")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.CAPTURED)
    refunded_amount = _amount_field(default=0)
    created_by_oid = models.CharField(max_length=36)
    created_by_app_id = models.CharField(max_length=36)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["tenant_id", "-created_at"], name="payment_tenant_created"),
            models.Index(fields=["tenant_id", "status"], name="payment_tenant_status"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_positive"),
            models.CheckConstraint(
                condition=Q(refunded_amount__gte=0) & Q(refunded_amount__lte=F("amount")),
                name="payment_refunds_within_amount",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.amount} {self.currency} ({self.status})"


class Refund(TenantOwnedModel):
    """A (partial) refund of a payment; the sum never exceeds the payment's amount."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds")
    amount = _amount_field()
    created_by_oid = models.CharField(max_length=36)
    created_by_app_id = models.CharField(max_length=36)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="refund_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"refund {self.amount} of {self.payment_id}"


class IdempotencyRecord(TenantOwnedModel):
    """The first answer to an ``Idempotency-Key``, replayed for the same request.

    Unique per tenant, caller and key: concurrent requests with one key insert one row, and
    the others wait for it and replay its answer instead of acting again.
    """

    key = models.CharField(max_length=IDEMPOTENCY_KEY_MAX_LENGTH)
    caller = models.CharField(max_length=80)
    request_fingerprint = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField(null=True)
    response_body = models.JSONField(null=True, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant_id", "caller", "key"], name="idempotency_key_once_per_caller"
            ),
        ]

    def __str__(self) -> str:
        return f"idempotency key for {self.caller}"
