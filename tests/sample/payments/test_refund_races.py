"""A refund that loses a race to another one: it reads the payment again and applies only
what still fits, on every database (SQLite ignores row locks)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection

import payments.views
from entra_auth.tenancy import tenant_context
from payments.models import Payment, Refund
from tests.sample.factories import REFUNDER, PaymentFactory, refresh
from tests.sample.paths import refund_url

pytestmark = pytest.mark.django_db


def a_refund_lands_first(monkeypatch: pytest.MonkeyPatch, payment: Payment, amount: str) -> None:
    """Another refund of ``amount`` lands right after this request reads the payment (in the
    request's own transaction here: what matters is that the value read is stale)."""
    read_payment = payments.views.PaymentViewSet.get_object
    raced: list[bool] = []

    def read_then_lose_the_race(*args: Any, **kwargs: Any) -> Any:
        found = read_payment(*args, **kwargs)
        if not raced:
            raced.append(True)
            with tenant_context(str(payment.tenant_id)):
                Payment.objects.filter(pk=payment.pk).update(
                    refunded_amount=Decimal(amount), status=Payment.Status.PARTIALLY_REFUNDED
                )
        return found

    monkeypatch.setattr(payments.views.PaymentViewSet, "get_object", read_then_lose_the_race)


def test_a_refund_that_no_longer_fits_after_losing_a_race_is_refused(
    call: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    payment = PaymentFactory(amount=Decimal("100.00"))
    a_refund_lands_first(monkeypatch, payment, "60.00")

    response = call(REFUNDER, "post", refund_url(payment.pk), {"amount": "60.00"})

    assert response.status_code == 409, response.content
    assert "40.00 EUR remains refundable" in response.json()["detail"]
    with tenant_context(str(payment.tenant_id)):
        assert not Refund.objects.exists()


def test_a_refund_that_still_fits_after_losing_a_race_adds_to_the_new_total(
    call: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    payment = PaymentFactory(amount=Decimal("100.00"))
    a_refund_lands_first(monkeypatch, payment, "30.00")

    response = call(REFUNDER, "post", refund_url(payment.pk), {"amount": "70.00"})

    assert response.status_code == 201, response.content
    refunded = refresh(payment)
    assert (refunded.refunded_amount, refunded.status) == (Decimal("100.00"), "refunded")


def test_the_embedded_sqlite_takes_the_write_lock_up_front_and_waits_for_it(settings):
    """WAL, IMMEDIATE transactions and a busy timeout: concurrent writers queue instead of
    failing at once with "database is locked"."""
    from project.settings import SQLITE_BUSY_TIMEOUT_S, sqlite_database

    options = sqlite_database("db.sqlite3")["OPTIONS"]

    assert options["transaction_mode"] == "IMMEDIATE"
    assert options["timeout"] == SQLITE_BUSY_TIMEOUT_S >= 10
    assert "journal_mode=WAL" in options["init_command"]
    if connection.vendor == "sqlite":
        assert connection.settings_dict["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
