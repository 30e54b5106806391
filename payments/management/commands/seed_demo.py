"""``manage.py seed_demo``: a few demo payments in two demo tenants (idempotent)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from entra_auth.tenancy import tenant_context
from payments.demo import DEMO_TENANT_A, DEMO_TENANT_B
from payments.models import Payment

DEMO_OID = "00000000-0000-4000-8000-0000000de300"
DEMO_APP_ID = "00000000-0000-4000-8000-0000000de3a0"
DEMO_PAYMENTS = {
    DEMO_TENANT_A: [
        ("42.00", "EUR", "Coffee beans"),
        ("1250", "JPY", "Green tea"),
        ("9.99", "USD", "Mug"),
    ],
    DEMO_TENANT_B: [("310.50", "GBP", "Office chairs"), ("12.345", "KWD", "Dates")],
}


class Command(BaseCommand):
    help = "Create demo payments in the two demo tenants, unless they have some already."

    def handle(self, *args: Any, **options: Any) -> None:
        created = 0
        for tenant_id, payments in DEMO_PAYMENTS.items():
            with tenant_context(tenant_id), transaction.atomic():
                if Payment.objects.exists():
                    continue
                for amount, currency, description in payments:
                    Payment.objects.create(
                        amount=Decimal(amount),
                        currency=currency,
                        description=description,
                        created_by_oid=DEMO_OID,
                        created_by_app_id=DEMO_APP_ID,
                    )
                    created += 1
        self.stdout.write(f"Demo data: {created} payment(s) created in the demo tenants.")
