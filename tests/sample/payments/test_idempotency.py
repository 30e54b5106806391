"""``Idempotency-Key`` on POST: one request, one effect, however often it is sent.

See docs/sample.md.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection

from entra_auth.tenancy import all_tenants_context, tenant_context
from payments.idempotency import IDEMPOTENCY_KEY_TTL, purge_expired
from payments.models import IdempotencyRecord, Payment, Refund
from tests.fake_entra import OTHER_CLIENT_APP_ID, TENANT_A, TENANT_B, FakeEntra
from tests.sample.factories import (
    APP_WRITER,
    REFUNDER,
    WRITER,
    Caller,
    PaymentFactory,
    refresh,
)
from tests.sample.paths import LIST, refund_url

pytestmark = pytest.mark.django_db

BODY = {"amount": "12.50", "currency": "EUR", "description": "Coffee"}
REPLAYED = "Idempotent-Replayed"
REUSED = {"detail": "This Idempotency-Key was already used with a different request."}
KEY_HELP = "Use 1 to 255 visible ASCII characters."
CONCURRENCY_NEEDS_POSTGRESQL = (
    "SQLite serializes or refuses concurrent writers: run with DATABASE_URL=postgres://..."
)
ANOTHER_USER_OID = "5b0e1c3d-7f6a-4e2b-9c8d-aa11bb22cc33"


# --- replay ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "caller", [pytest.param(WRITER, id="delegated"), pytest.param(APP_WRITER, id="app-only")]
)
def test_a_create_replayed_with_the_same_key_and_body_answers_the_original_and_creates_nothing(
    call: Callable[..., Any], row_counts: Callable[[], dict[str, int]], caller: Caller
) -> None:
    first = call(caller, "post", LIST, BODY, Idempotency_Key="order-42")
    after_first = row_counts()

    replays = [call(caller, "post", LIST, BODY, Idempotency_Key="order-42") for _ in range(2)]

    assert first.status_code == 201 and REPLAYED not in first
    for replay in replays:
        assert replay.status_code == 201
        assert replay.json() == first.json()
        assert replay[REPLAYED] == "true"
    assert after_first == {"payments": 1, "refunds": 0, "idempotency_keys": 1}
    assert row_counts() == after_first


def test_the_same_json_written_differently_is_the_same_request(
    api_client: Any, fake_entra: FakeEntra, row_counts: Callable[[], dict[str, int]]
) -> None:
    headers = {**WRITER.headers(fake_entra), "HTTP_IDEMPOTENCY_KEY": "order-42"}
    compact = b'{"amount":"12.50","currency":"EUR","description":"Coffee"}'
    spaced = b'{ "description": "Coffee",\n  "currency": "EUR", "amount": "12.50" }'

    first = api_client.post(LIST, compact, content_type="application/json", **headers)
    again = api_client.post(LIST, spaced, content_type="application/json", **headers)

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json() and again[REPLAYED] == "true"
    assert row_counts()["payments"] == 1


def test_a_refund_replayed_with_the_same_key_answers_the_original_and_refunds_once(
    call: Callable[..., Any], row_counts: Callable[[], dict[str, int]], payment: Payment
) -> None:
    first = call(
        REFUNDER, "post", refund_url(payment.id), {"amount": "60.00"}, Idempotency_Key="r1"
    )
    after_first = row_counts()

    replay = call(
        REFUNDER, "post", refund_url(payment.id), {"amount": "60.00"}, Idempotency_Key="r1"
    )

    assert first.status_code == 201, first.content
    assert (replay.status_code, replay.json(), replay[REPLAYED]) == (201, first.json(), "true")
    assert row_counts() == after_first
    refresh(payment)
    assert (payment.refunded_amount, payment.status) == (Decimal("60.00"), "partially_refunded")


def test_a_refund_replay_answers_the_original_even_once_nothing_is_left_to_refund(
    call: Callable[..., Any], payment: Payment
) -> None:
    first = call(
        REFUNDER, "post", refund_url(payment.id), {"amount": "60.00"}, Idempotency_Key="r1"
    )
    rest = call(REFUNDER, "post", refund_url(payment.id), {"amount": "40.00"})

    replay = call(
        REFUNDER, "post", refund_url(payment.id), {"amount": "60.00"}, Idempotency_Key="r1"
    )

    assert (first.status_code, rest.status_code) == (201, 201)
    assert (replay.status_code, replay.json()) == (201, first.json())
    with all_tenants_context():
        assert Refund.all_tenants.count() == 2


@pytest.mark.parametrize("action", ["create", "refund"])
def test_a_write_without_a_key_is_refused_naming_the_header_and_changes_nothing(
    call: Callable[..., Any],
    error_body: Callable[[Any, int], dict[str, Any]],
    row_counts: Callable[[], dict[str, int]],
    action: str,
) -> None:
    payment = PaymentFactory()
    path, body, caller = (
        (LIST, BODY, WRITER)
        if action == "create"
        else (f"/api/payments/{payment.pk}/refund/", {"amount": "1.00"}, REFUNDER)
    )
    before = row_counts()

    response = call(caller, "post", path, body, Idempotency_Key=None)

    assert error_body(response, 400)["Idempotency-Key"] == [
        "This header is required: a unique value per operation, sent again unchanged when "
        "the request is retried."
    ]
    assert row_counts() == before


# --- another request with the same key ------------------------------------------------------


@pytest.mark.parametrize(
    "other",
    [
        pytest.param({**BODY, "amount": "12.51"}, id="another-amount"),
        pytest.param({**BODY, "currency": "USD"}, id="another-currency"),
        pytest.param({**BODY, "description": "Tea"}, id="another-description"),
        pytest.param({"amount": "12.50", "currency": "EUR"}, id="a-field-left-out"),
    ],
)
def test_a_key_reused_with_a_different_body_is_refused_with_nothing_created(
    call: Callable[..., Any],
    error_body: Callable[[Any, int], dict[str, Any]],
    row_counts: Callable[[], dict[str, int]],
    other: dict[str, str],
) -> None:
    original = call(WRITER, "post", LIST, BODY, Idempotency_Key="order-42")
    before = row_counts()

    response = call(WRITER, "post", LIST, other, Idempotency_Key="order-42")

    assert original.status_code == 201
    assert error_body(response, 422) == REUSED
    assert row_counts() == before
    assert call(WRITER, "post", LIST, BODY, Idempotency_Key="order-42").json() == original.json()


@pytest.mark.parametrize(
    ("first_path", "first_body", "second_path", "second_body"),
    [
        pytest.param(
            lambda p, q: LIST,
            BODY,
            lambda p, q: refund_url(p.id),
            {"amount": "1.00"},
            id="create-then-refund",
        ),
        pytest.param(
            lambda p, q: refund_url(q.id),
            {"amount": "1.00"},
            lambda p, q: refund_url(p.id),
            {"amount": "1.00"},
            id="refund-of-another-payment",
        ),
    ],
)
def test_a_key_reused_for_another_request_path_is_refused_with_nothing_created(
    call: Callable[..., Any],
    error_body: Callable[[Any, int], dict[str, Any]],
    row_counts: Callable[[], dict[str, int]],
    payment: Payment,
    first_path: Callable[[Payment, Payment], str],
    first_body: dict[str, str],
    second_path: Callable[[Payment, Payment], str],
    second_body: dict[str, str],
) -> None:
    other_payment = PaymentFactory()
    first = call(
        REFUNDER, "post", first_path(payment, other_payment), first_body, Idempotency_Key="k"
    )
    before = row_counts()

    response = call(
        REFUNDER, "post", second_path(payment, other_payment), second_body, Idempotency_Key="k"
    )

    assert first.status_code == 201
    assert error_body(response, 422) == REUSED
    assert row_counts() == before
    refresh(payment)
    assert payment.refunded_amount == 0


# --- scope of a key -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(WRITER.in_tenant(TENANT_B), id="same-kind-of-caller-in-another-tenant"),
        pytest.param(
            WRITER.with_claims(oid=ANOTHER_USER_OID, sub=ANOTHER_USER_OID),
            id="another-user-of-the-tenant",
        ),
        pytest.param(APP_WRITER, id="an-app-of-the-tenant"),
        pytest.param(
            APP_WRITER.with_claims(azp=OTHER_CLIENT_APP_ID), id="another-app-of-the-tenant"
        ),
    ],
)
def test_keys_belong_to_one_tenant_and_caller(
    call: Callable[..., Any], row_counts: Callable[[], dict[str, int]], other: Caller
) -> None:
    mine = call(WRITER, "post", LIST, BODY, Idempotency_Key="order-42")

    theirs = call(other, "post", LIST, BODY, Idempotency_Key="order-42")
    theirs_again = call(other, "post", LIST, BODY, Idempotency_Key="order-42")
    mine_again = call(WRITER, "post", LIST, BODY, Idempotency_Key="order-42")

    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert REPLAYED not in theirs
    assert theirs.json()["id"] != mine.json()["id"]
    assert (theirs.json()["tenant_id"], theirs.json()["created_by_oid"]) == (
        other.tenant,
        other.oid,
    )
    assert theirs_again.json() == theirs.json() and theirs_again[REPLAYED] == "true"
    assert mine_again.json() == mine.json() and mine_again[REPLAYED] == "true"
    assert row_counts() == {"payments": 2, "refunds": 0, "idempotency_keys": 2}


def test_a_key_is_kept_in_the_callers_tenant(call: Callable[..., Any]) -> None:
    call(WRITER.in_tenant(TENANT_B), "post", LIST, BODY, Idempotency_Key="order-42")

    # Unscoped on purpose: where the key row landed.
    with all_tenants_context():
        record = IdempotencyRecord.all_tenants.get()
    assert (str(record.tenant_id), record.key, record.response_status) == (
        TENANT_B,
        "order-42",
        201,
    )
    with tenant_context(TENANT_A):
        assert not IdempotencyRecord.objects.exists()


# --- invalid keys and failed requests -------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("", id="empty"),
        pytest.param("k" * 256, id="256-characters"),
        pytest.param("with space", id="space"),
        pytest.param("tab\there", id="tab"),
        pytest.param("bell\x07", id="control-character"),
        pytest.param("nul\x00", id="nul"),
        pytest.param("delete\x7f", id="del"),
        pytest.param("clé", id="non-ascii"),
    ],
)
@pytest.mark.parametrize("endpoint", ["create", "refund"])
def test_invalid_keys_are_refused_with_nothing_created(
    call: Callable[..., Any],
    error_body: Callable[[Any, int], dict[str, Any]],
    row_counts: Callable[[], dict[str, int]],
    payment: Payment,
    key: str,
    endpoint: str,
) -> None:
    path, body = (LIST, BODY) if endpoint == "create" else (refund_url(payment.id), {"amount": "1"})
    before = row_counts()

    response = call(REFUNDER, "post", path, body, Idempotency_Key=key)

    assert error_body(response, 400) == {
        "detail": "The request is invalid.",
        "Idempotency-Key": [KEY_HELP],
    }
    assert row_counts() == before


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("k" * 255, id="255-characters"),
        pytest.param("!", id="one-character"),
        pytest.param("".join(map(chr, range(0x21, 0x7F))), id="every-visible-ascii-character"),
        pytest.param("3f2c8d3e-5b7a-4c1e-9f00-0a1b2c3d4e5f", id="a-uuid"),
    ],
)
def test_keys_of_visible_ascii_up_to_255_characters_are_accepted(
    call: Callable[..., Any], key: str
) -> None:
    first = call(WRITER, "post", LIST, BODY, Idempotency_Key=key)
    replay = call(WRITER, "post", LIST, BODY, Idempotency_Key=key)

    assert (first.status_code, replay.status_code, replay[REPLAYED]) == (201, 201, "true")
    with all_tenants_context():
        assert Payment.all_tenants.count() == 1


def test_a_refused_create_does_not_use_up_its_key(
    call: Callable[..., Any], row_counts: Callable[[], dict[str, int]]
) -> None:
    refused = call(WRITER, "post", LIST, {**BODY, "amount": "-1"}, Idempotency_Key="order-42")
    assert (refused.status_code, row_counts()["idempotency_keys"]) == (400, 0)

    accepted = call(WRITER, "post", LIST, BODY, Idempotency_Key="order-42")

    assert accepted.status_code == 201 and REPLAYED not in accepted
    assert row_counts() == {"payments": 1, "refunds": 0, "idempotency_keys": 1}


def test_a_refund_refused_for_exceeding_the_amount_does_not_use_up_its_key(
    call: Callable[..., Any], row_counts: Callable[[], dict[str, int]], payment: Payment
) -> None:
    too_much = call(
        REFUNDER, "post", refund_url(payment.id), {"amount": "100.01"}, Idempotency_Key="r1"
    )
    assert (too_much.status_code, row_counts()["idempotency_keys"]) == (409, 0)

    accepted = call(
        REFUNDER, "post", refund_url(payment.id), {"amount": "10.00"}, Idempotency_Key="r1"
    )

    assert accepted.status_code == 201 and REPLAYED not in accepted
    assert row_counts() == {"payments": 1, "refunds": 1, "idempotency_keys": 1}


def test_a_refused_permission_check_does_not_use_up_the_key(
    call: Callable[..., Any], row_counts: Callable[[], dict[str, int]], payment: Payment
) -> None:
    denied = call(WRITER, "post", refund_url(payment.id), {"amount": "1.00"}, Idempotency_Key="r1")

    accepted = call(
        REFUNDER, "post", refund_url(payment.id), {"amount": "1.00"}, Idempotency_Key="r1"
    )

    assert (denied.status_code, accepted.status_code) == (403, 201)
    assert REPLAYED not in accepted


# --- retention ------------------------------------------------------------------------------


def _key_created_at(tenant: str, key: str, created_at: datetime) -> None:
    with tenant_context(tenant):
        record = IdempotencyRecord.objects.create(
            key=key, caller="user:x", request_fingerprint="0" * 64, response_status=201
        )
    # Unscoped on purpose: back-date the row, whatever its tenant.
    with all_tenants_context():
        IdempotencyRecord.all_tenants.filter(pk=record.pk).update(created_at=created_at)


def test_purge_deletes_keys_older_than_the_retention_period_in_every_tenant() -> None:
    now = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
    assert timedelta(hours=24) == IDEMPOTENCY_KEY_TTL
    for tenant in (TENANT_A, TENANT_B):
        _key_created_at(tenant, "old", now - IDEMPOTENCY_KEY_TTL - timedelta(microseconds=1))
        _key_created_at(tenant, "exactly-24h", now - IDEMPOTENCY_KEY_TTL)
        _key_created_at(tenant, "fresh", now - timedelta(minutes=5))

    deleted = purge_expired(now=now)

    assert deleted == 2
    with all_tenants_context():
        remaining = list(IdempotencyRecord.all_tenants.values_list("tenant_id", "key"))
    assert sorted((str(t), k) for t, k in remaining) == sorted(
        (tenant, key) for tenant in (TENANT_A, TENANT_B) for key in ("exactly-24h", "fresh")
    )


# --- concurrency ----------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason=CONCURRENCY_NEEDS_POSTGRESQL)
@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_with_one_key_make_exactly_one_payment(
    fake_entra: FakeEntra,
    post_concurrently: Callable[..., list[Any]],
    row_counts: Callable[[], dict[str, int]],
) -> None:
    headers = {**WRITER.headers(fake_entra), "HTTP_IDEMPOTENCY_KEY": "order-42"}

    responses = post_concurrently([(LIST, BODY, headers)] * 8)

    assert [r.status_code for r in responses] == [201] * 8
    assert len({r.json()["id"] for r in responses}) == 1
    assert sorted(r.get(REPLAYED, "") for r in responses) == [""] + ["true"] * 7
    assert row_counts() == {"payments": 1, "refunds": 0, "idempotency_keys": 1}


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason=CONCURRENCY_NEEDS_POSTGRESQL)
@pytest.mark.django_db(transaction=True)
def test_concurrent_refunds_with_one_key_refund_once(
    fake_entra: FakeEntra,
    post_concurrently: Callable[..., list[Any]],
    row_counts: Callable[[], dict[str, int]],
) -> None:
    payment = PaymentFactory(amount=Decimal("100.00"))
    headers = {**REFUNDER.headers(fake_entra), "HTTP_IDEMPOTENCY_KEY": "refund-1"}

    responses = post_concurrently([(refund_url(payment.id), {"amount": "30.00"}, headers)] * 6)

    assert [r.status_code for r in responses] == [201] * 6
    assert len({r.json()["id"] for r in responses}) == 1
    assert row_counts() == {"payments": 1, "refunds": 1, "idempotency_keys": 1}
    refresh(payment)
    assert payment.refunded_amount == Decimal("30.00")


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason=CONCURRENCY_NEEDS_POSTGRESQL)
@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_with_one_key_by_different_callers_act_independently(
    fake_entra: FakeEntra,
    post_concurrently: Callable[..., list[Any]],
    row_counts: Callable[[], dict[str, int]],
) -> None:
    callers = [WRITER, WRITER.in_tenant(TENANT_B), APP_WRITER, APP_WRITER.in_tenant(TENANT_B)]
    requests = [
        (LIST, BODY, {**caller.headers(fake_entra), "HTTP_IDEMPOTENCY_KEY": "order-42"})
        for caller in callers
    ]

    responses = post_concurrently(requests)

    assert [r.status_code for r in responses] == [201] * 4
    assert not any(REPLAYED in r for r in responses)
    assert [(r.json()["tenant_id"], r.json()["created_by_oid"]) for r in responses] == [
        (caller.tenant, caller.oid) for caller in callers
    ]
    assert row_counts() == {"payments": 4, "refunds": 0, "idempotency_keys": 4}
