"""Admin for payments and refunds: read-mostly, across tenants (explicitly unscoped)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from entra_auth.admin import AllTenantsAdminMixin, ReadOnlyAdminMixin

from .currencies import quantum
from .models import Payment, Refund


class ReadOnlyAcrossTenantsAdmin(AllTenantsAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Staff see every tenant's rows (the admin's views run in all_tenants_context()) and
    change none."""


class RefundInline(AllTenantsAdminMixin, admin.TabularInline):
    """The payment's refunds, read across tenants like the payment itself (the same tenant by
    construction; the payment's admin view runs in all_tenants_context())."""

    model = Refund
    fields = ["amount", "created_by_oid", "created_by_app_id", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _money(amount: Decimal, currency: str) -> str:
    return f"{amount.quantize(quantum(currency))} {currency}"


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAcrossTenantsAdmin):
    list_display = ["id", "tenant_id", "money", "status", "refunded", "created_at"]
    fields = readonly_fields = [
        "id",
        "tenant_id",
        "money",
        "status",
        "refunded",
        "description",
        "created_by_oid",
        "created_by_app_id",
        "created_at",
    ]
    list_filter = ["status", "currency", "created_at"]
    search_fields = ["=id", "=tenant_id", "=created_by_oid", "=created_by_app_id", "description"]
    date_hierarchy = "created_at"
    ordering = ["-created_at"]
    inlines = [RefundInline]

    @admin.display(description="amount", ordering="amount")
    def money(self, payment: Payment) -> str:
        return _money(payment.amount, payment.currency)

    @admin.display(description="refunded", ordering="refunded_amount")
    def refunded(self, payment: Payment) -> str:
        return _money(payment.refunded_amount, payment.currency)


@admin.register(Refund)
class RefundAdmin(ReadOnlyAcrossTenantsAdmin):
    list_display = ["id", "tenant_id", "payment_id", "money", "created_at"]
    fields = readonly_fields = [
        "id",
        "tenant_id",
        "payment",
        "money",
        "created_by_oid",
        "created_by_app_id",
        "created_at",
    ]
    list_filter = ["created_at"]
    search_fields = ["=id", "=tenant_id", "=payment__id", "=created_by_oid"]
    date_hierarchy = "created_at"
    ordering = ["-created_at"]
    list_select_related = ["payment"]

    @admin.display(description="amount", ordering="amount")
    def money(self, refund: Refund) -> str:
        return _money(refund.amount, refund.payment.currency)
