"""factory-boy factories of the payments sample, and the callers (tokens) its tests act as.

Built on ``tests.factories``: every row is created inside its tenant, through the
tenant-scoped manager; the callers hold the sample's ``Payments.*`` scopes and roles.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import factory
from django.db.models import F

from entra_auth.tenancy import tenant_context
from payments.models import Payment, Refund
from tests.factories import Caller, TenantOwnedFactory, app_oid, user_oid
from tests.fake_entra import CLIENT_APP_ID, TENANT_A, TENANT_B


class PaymentFactory(TenantOwnedFactory):
    """A captured payment of 12.50 EUR made by the tenant's user through the client app."""

    class Meta:
        model = Payment

    amount = Decimal("12.50")
    currency = "EUR"
    description = factory.Sequence(lambda n: f"Payment {n}")
    created_by_oid = factory.LazyAttribute(lambda o: user_oid(o.tenant_id))
    created_by_app_id = CLIENT_APP_ID


class RefundFactory(TenantOwnedFactory):
    """A refund of (part of) a payment of the same tenant; the payment's totals follow it."""

    class Meta:
        model = Refund

    payment = factory.SubFactory(
        PaymentFactory, tenant_id=factory.SelfAttribute("..tenant_id"), amount=Decimal("100.00")
    )
    amount = Decimal("10.00")
    created_by_oid = factory.LazyAttribute(lambda o: user_oid(o.tenant_id))
    created_by_app_id = CLIENT_APP_ID

    @classmethod
    def _create_in_tenant(cls, model_class: type[Any], *args: Any, **kwargs: Any) -> Any:
        refund = super()._create_in_tenant(model_class, *args, **kwargs)
        payment = refund.payment
        Payment.objects.filter(pk=payment.pk).update(
            refunded_amount=F("refunded_amount") + refund.amount
        )
        payment.refresh_from_db()
        payment.status = (
            Payment.Status.REFUNDED
            if payment.refunded_amount == payment.amount
            else Payment.Status.PARTIALLY_REFUNDED
        )
        payment.save(update_fields=["status"])
        return refund


# --- callers ------------------------------------------------------------------------------


# Delegated callers (a user signed in to the client app).
READER = Caller(scopes=("Payments.Read",))
WRITER = Caller(scopes=("Payments.Write",))
REFUNDER = Caller(scopes=("Payments.Write",), roles=("Payments.Admin",))
ADMIN_READER = Caller(scopes=("Payments.Read",), roles=("Payments.Admin",))
# Delegated tokens holding no Payments scope: a token without any ``scp`` is app-only by
# definition (docs/tokens.md), so "no scope" here means only scopes of other APIs.
UNRELATED_USER = Caller(scopes=("User.Read",))
ADMIN_ROLE_ONLY_USER = Caller(scopes=("User.Read",), roles=("Payments.Admin",))
USER_WITH_APP_ROLES = Caller(
    scopes=("User.Read",), roles=("Payments.Read.All", "Payments.ReadWrite.All")
)
# App-only callers (client credentials).
APP_READER = Caller(app_only=True, roles=("Payments.Read.All",))
APP_WRITER = Caller(app_only=True, roles=("Payments.ReadWrite.All",))
APP_WITH_ADMIN_ROLE = Caller(app_only=True, roles=("Payments.Admin",))

__all__ = [
    "ADMIN_READER",
    "ADMIN_ROLE_ONLY_USER",
    "APP_READER",
    "APP_WITH_ADMIN_ROLE",
    "APP_WRITER",
    "READER",
    "REFUNDER",
    "TENANT_A",
    "TENANT_B",
    "UNRELATED_USER",
    "USER_WITH_APP_ROLES",
    "WRITER",
    "Caller",
    "PaymentFactory",
    "RefundFactory",
    "app_oid",
    "user_oid",
]


def refresh(row: Any) -> Any:
    """Re-read a tenant-owned row as its own tenant (outside any tenant context the database
    shows no tenant's rows)."""
    with tenant_context(str(row.tenant_id)):
        row.refresh_from_db()
    return row
