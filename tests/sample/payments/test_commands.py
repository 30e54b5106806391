"""Management commands of the sample: ``seed_demo``, ``payments_purge_idempotency_keys``,
``quickstart``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from entra_auth.tenancy import all_tenants_context
from payments.demo import DEMO_TENANT_A, DEMO_TENANT_B
from payments.idempotency import IDEMPOTENCY_KEY_TTL
from payments.models import IdempotencyRecord, Payment
from tests.fake_entra import TENANT_A, TENANT_B
from tests.sample.factories import READER, WRITER, PaymentFactory
from tests.sample.paths import LIST

pytestmark = pytest.mark.django_db

BODY = {"amount": "12.50", "currency": "EUR"}
DEMO_PAYMENTS = {
    DEMO_TENANT_A: [("1250.000", "JPY"), ("42.000", "EUR"), ("9.990", "USD")],
    DEMO_TENANT_B: [("12.345", "KWD"), ("310.500", "GBP")],
}


def run(command: str, *args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(command, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def payments_by_tenant() -> dict[str, list[tuple[str, str]]]:
    # Unscoped on purpose: the commands write into several tenants.
    rows: dict[str, list[tuple[str, str]]] = {}
    with all_tenants_context():
        for tenant, amount, currency in Payment.all_tenants.values_list(
            "tenant_id", "amount", "currency"
        ):
            rows.setdefault(str(tenant), []).append((f"{Decimal(amount):.3f}", currency))
    return {tenant: sorted(found) for tenant, found in rows.items()}


# --- seed_demo ------------------------------------------------------------------------------


def test_seed_demo_creates_payments_in_the_two_demo_tenants() -> None:
    out, _ = run("seed_demo")

    assert out == "Demo data: 5 payment(s) created in the demo tenants.\n"
    assert payments_by_tenant() == DEMO_PAYMENTS
    with all_tenants_context():
        assert set(Payment.all_tenants.values_list("status", flat=True)) == {"captured"}


def test_seed_demo_run_again_creates_nothing() -> None:
    run("seed_demo")
    with all_tenants_context():
        first = sorted(Payment.all_tenants.values_list("id", flat=True))

    out, _ = run("seed_demo")

    assert out == "Demo data: 0 payment(s) created in the demo tenants.\n"
    with all_tenants_context():
        assert sorted(Payment.all_tenants.values_list("id", flat=True)) == first


def test_seed_demo_leaves_a_demo_tenant_that_has_payments_alone() -> None:
    PaymentFactory(tenant_id=DEMO_TENANT_B, amount=Decimal("1.00"), currency="EUR")

    out, _ = run("seed_demo")

    assert out == "Demo data: 3 payment(s) created in the demo tenants.\n"
    assert payments_by_tenant() == {
        DEMO_TENANT_A: DEMO_PAYMENTS[DEMO_TENANT_A],
        DEMO_TENANT_B: [("1.000", "EUR")],
    }


def test_seed_demo_touches_no_other_tenant() -> None:
    PaymentFactory(tenant_id=TENANT_A)

    run("seed_demo")

    assert payments_by_tenant()[TENANT_A] == [("12.500", "EUR")]
    assert TENANT_B not in payments_by_tenant()


def test_demo_payments_are_served_to_the_demo_tenants_callers(
    call: Callable[..., Any], configure: Callable[..., None]
) -> None:
    configure(TENANT_ID="organizations", ALLOWED_TENANTS=[DEMO_TENANT_A, DEMO_TENANT_B])
    run("seed_demo")

    seen = {
        tenant: call(READER.in_tenant(tenant), "get", LIST).json()["results"]
        for tenant in (DEMO_TENANT_A, DEMO_TENANT_B)
    }

    assert sorted((p["amount"], p["currency"]) for p in seen[DEMO_TENANT_A]) == [
        ("1250", "JPY"),
        ("42.00", "EUR"),
        ("9.99", "USD"),
    ]
    assert sorted((p["amount"], p["currency"]) for p in seen[DEMO_TENANT_B]) == [
        ("12.345", "KWD"),
        ("310.50", "GBP"),
    ]


# --- payments_purge_idempotency_keys --------------------------------------------------------


def _age(tenant: str, key: str, age: timedelta) -> None:
    # Unscoped on purpose: back-date one tenant's key as if time had passed.
    with all_tenants_context():
        aged = IdempotencyRecord.all_tenants.filter(tenant_id=tenant, key=key).update(
            created_at=timezone.now() - age
        )
    assert aged == 1


def test_purge_deletes_only_keys_older_than_24_hours_in_every_tenant(
    call: Callable[..., Any],
) -> None:
    for tenant in (TENANT_A, TENANT_B):
        for key in ("old", "day-old", "recent"):
            created = call(WRITER.in_tenant(tenant), "post", LIST, BODY, Idempotency_Key=key)
            assert created.status_code == 201
        _age(tenant, "old", IDEMPOTENCY_KEY_TTL + timedelta(days=3))
        _age(tenant, "day-old", IDEMPOTENCY_KEY_TTL + timedelta(minutes=1))
        _age(tenant, "recent", IDEMPOTENCY_KEY_TTL - timedelta(hours=1))

    out, _ = run("payments_purge_idempotency_keys")

    assert out == "Deleted 4 expired idempotency key(s).\n"
    with all_tenants_context():
        kept = list(IdempotencyRecord.all_tenants.values_list("tenant_id", "key"))
    assert sorted((str(t), k) for t, k in kept) == sorted(
        [(TENANT_A, "recent"), (TENANT_B, "recent")]
    )
    with all_tenants_context():
        assert Payment.all_tenants.count() == 6


def test_purge_with_nothing_expired_deletes_nothing(call: Callable[..., Any]) -> None:
    call(WRITER, "post", LIST, BODY, Idempotency_Key="recent")

    out, _ = run("payments_purge_idempotency_keys")

    assert out == "Deleted 0 expired idempotency key(s).\n"
    with all_tenants_context():
        assert IdempotencyRecord.all_tenants.count() == 1


def test_a_purged_key_acts_again_while_a_kept_key_still_replays(call: Callable[..., Any]) -> None:
    expired = call(WRITER, "post", LIST, BODY, Idempotency_Key="expired")
    kept = call(WRITER, "post", LIST, BODY, Idempotency_Key="kept")
    _age(TENANT_A, "expired", IDEMPOTENCY_KEY_TTL + timedelta(hours=1))
    run("payments_purge_idempotency_keys")

    expired_again = call(WRITER, "post", LIST, BODY, Idempotency_Key="expired")
    kept_again = call(WRITER, "post", LIST, BODY, Idempotency_Key="kept")

    assert expired_again.status_code == 201 and "Idempotent-Replayed" not in expired_again
    assert expired_again.json()["id"] != expired.json()["id"]
    assert kept_again.json() == kept.json() and kept_again["Idempotent-Replayed"] == "true"
    with all_tenants_context():
        assert Payment.all_tenants.count() == 3


# --- quickstart -----------------------------------------------------------------------------


def test_quickstart_prints_how_to_call_the_api_and_warns_when_dev_tokens_are_untrusted() -> None:
    out, err = run("quickstart", "--base-url", "http://127.0.0.1:9000/")

    assert f"--tenant {DEMO_TENANT_A}" in out
    assert "http://127.0.0.1:9000/api/me/" in out
    assert err == "Development tokens are not trusted: set DJANGO_DEBUG=1 ENTRA_DEV_ISSUER=1.\n"


@pytest.mark.parametrize("enabled", [True, False])
def test_quickstart_points_to_the_swagger_ui_while_it_is_served(
    settings: Any, enabled: bool
) -> None:
    settings.OPENAPI_ENABLED = enabled

    out, _ = run("quickstart", "--base-url", "http://127.0.0.1:9000")

    assert ("http://127.0.0.1:9000/api/docs/" in out) is enabled
    assert ("developmentToken" in out) is enabled


def test_quickstart_does_not_warn_when_dev_tokens_are_trusted(
    configure: Callable[..., None],
) -> None:
    configure(DEV_ISSUER=True, DEV_ISSUER_WITHOUT_DEBUG=True)

    _, err = run("quickstart")

    assert err == ""
