"""``manage.py payments_purge_idempotency_keys``: delete Idempotency-Keys past their 24 h."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from payments.idempotency import IDEMPOTENCY_KEY_TTL, purge_expired


class Command(BaseCommand):
    help = f"Delete Idempotency-Key records older than {IDEMPOTENCY_KEY_TTL} (all tenants)."

    def handle(self, *args: Any, **options: Any) -> None:
        deleted = purge_expired()
        self.stdout.write(f"Deleted {deleted} expired idempotency key(s).")
