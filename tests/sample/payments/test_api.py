"""The payments API (docs/sample.md): who may call what, tenants, pagination, money and refunds.

Requests go through the whole stack: fake Entra tokens, ``EntraJWTAuthentication``, the
permission rules of ``payments.views`` and the JSON error handler.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from rest_framework.test import APIClient

from entra_auth.tenancy import all_tenants_context
from payments.models import Payment, Refund
from payments.views import MAX_PAGE_SIZE, PAGE_SIZE
from tests.fake_entra import CLIENT_APP_ID, OTHER_CLIENT_APP_ID, TENANT_A, TENANT_B, FakeEntra
from tests.sample.factories import (
    ADMIN_READER,
    APP_READER,
    APP_WRITER,
    READER,
    REFUNDER,
    UNRELATED_USER,
    WRITER,
    Caller,
    PaymentFactory,
    RefundFactory,
    app_oid,
    refresh,
    user_oid,
)
from tests.sample.paths import (
    DENIED_CASES,
    ENDPOINTS,
    LIST,
    REALM,
    detail_url,
    insufficient_scope,
    lacks,
    refund_url,
)

pytestmark = pytest.mark.django_db

ME = "/api/me/"
CONCURRENCY_NEEDS_POSTGRESQL = (
    "SQLite serializes or refuses concurrent writers: run with DATABASE_URL=postgres://..."
)
MISSING_ID = "00000000-0000-4000-8000-00000000dead"
A_DAY = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)


def iso(moment: datetime) -> str:
    """How DRF renders a date-time in UTC."""
    return moment.isoformat().replace("+00:00", "Z")


def payment_json(
    payment: Payment, *, amount: str = "12.50", refunded_amount: str = "0.00"
) -> dict[str, Any]:
    """The API's view of a factory payment (12.50 EUR unless told otherwise)."""
    return {
        "id": str(payment.id),
        "tenant_id": str(payment.tenant_id),
        "amount": amount,
        "currency": payment.currency,
        "description": payment.description,
        "status": payment.status,
        "refunded_amount": refunded_amount,
        "created_by_oid": payment.created_by_oid,
        "created_by_app_id": payment.created_by_app_id,
        "created_at": iso(payment.created_at),
    }


def ids(response: Any) -> list[str]:
    return [row["id"] for row in response.json()["results"]]


# --- who may call what ----------------------------------------------------------------------

READ_ALLOWED = [
    pytest.param(READER, id="scope-Payments.Read"),
    pytest.param(WRITER, id="scope-Payments.Write"),
    pytest.param(REFUNDER, id="scope-Payments.Write+user-role-Payments.Admin"),
    pytest.param(ADMIN_READER, id="scope-Payments.Read+user-role-Payments.Admin"),
    pytest.param(APP_READER, id="app-Payments.Read.All"),
    pytest.param(APP_WRITER, id="app-Payments.ReadWrite.All"),
]
CREATE_ALLOWED = [
    pytest.param(WRITER, id="scope-Payments.Write"),
    pytest.param(REFUNDER, id="scope-Payments.Write+user-role-Payments.Admin"),
    pytest.param(APP_WRITER, id="app-Payments.ReadWrite.All"),
]
REFUND_ALLOWED = [
    pytest.param(REFUNDER, id="scope-Payments.Write+user-role-Payments.Admin"),
    pytest.param(APP_WRITER, id="app-Payments.ReadWrite.All"),
]


@pytest.mark.parametrize("caller", READ_ALLOWED)
def test_list_answers_the_tenants_payments_to_readers(
    call: Callable[..., Any], payment: Payment, caller: Caller
) -> None:
    response = call(caller, "get", LIST)

    assert response.status_code == 200
    assert response.json() == {
        "next": None,
        "previous": None,
        "results": [payment_json(payment, amount="100.00")],
    }


@pytest.mark.parametrize("caller", READ_ALLOWED)
def test_retrieve_answers_the_payment_to_readers(
    call: Callable[..., Any], payment: Payment, caller: Caller
) -> None:
    response = call(caller, "get", detail_url(payment.id))

    assert response.status_code == 200
    assert response.json() == payment_json(payment, amount="100.00")


@pytest.mark.parametrize("caller", CREATE_ALLOWED)
def test_create_records_the_payment_in_the_callers_tenant_with_its_creator(
    call: Callable[..., Any], row_counts: Callable[[], dict[str, int]], caller: Caller
) -> None:
    before = row_counts()

    response = call(
        caller, "post", LIST, {"amount": "12.50", "currency": "EUR", "description": "Coffee"}
    )

    assert response.status_code == 201, response.content
    body = response.json()
    with all_tenants_context():
        created = Payment.all_tenants.get()
    assert body == {
        "id": str(created.id),
        "tenant_id": TENANT_A,
        "amount": "12.50",
        "currency": "EUR",
        "description": "Coffee",
        "status": "captured",
        "refunded_amount": "0.00",
        "created_by_oid": caller.oid,
        "created_by_app_id": CLIENT_APP_ID,
        "created_at": iso(created.created_at),
    }
    assert (str(created.tenant_id), created.amount) == (TENANT_A, Decimal("12.50"))
    assert row_counts() == {
        **before,
        "payments": before["payments"] + 1,
        "idempotency_keys": before["idempotency_keys"] + 1,
    }


@pytest.mark.parametrize("caller", REFUND_ALLOWED)
def test_refund_records_the_refund_with_its_actor(
    call: Callable[..., Any], payment: Payment, caller: Caller
) -> None:
    response = call(caller, "post", refund_url(payment.id), {"amount": "30.00"})

    assert response.status_code == 201, response.content
    with all_tenants_context():
        refund = Refund.all_tenants.get()
    assert response.json() == {
        "id": str(refund.id),
        "payment": str(payment.id),
        "amount": "30.00",
        "created_by_oid": caller.oid,
        "created_by_app_id": CLIENT_APP_ID,
        "created_at": iso(refund.created_at),
    }
    assert (str(refund.tenant_id), refund.payment_id, refund.amount) == (
        TENANT_A,
        payment.id,
        Decimal("30.00"),
    )


@pytest.mark.parametrize(("action", "caller", "missing"), DENIED_CASES)
def test_callers_without_the_required_permission_are_refused_naming_what_is_missing(
    call: Callable[..., Any],
    error_body: Callable[[Any, int], dict[str, Any]],
    row_counts: Callable[[], dict[str, int]],
    payment: Payment,
    action: str,
    caller: Caller,
    missing: tuple[str, ...],
) -> None:
    method, path, body = ENDPOINTS[action]
    before = row_counts()

    response = call(caller, method, path(payment), body)

    assert error_body(response, 403) == {"detail": lacks(missing)}
    assert response["WWW-Authenticate"] == insufficient_scope(missing)
    assert row_counts() == before
    refresh(payment)
    assert (payment.refunded_amount, payment.status) == (0, "captured")


@pytest.mark.parametrize("action", [*ENDPOINTS, "me"])
def test_every_endpoint_refuses_a_request_without_a_token(
    call: Callable[..., Any],
    error_body: Callable[[Any, int], dict[str, Any]],
    row_counts: Callable[[], dict[str, int]],
    payment: Payment,
    action: str,
) -> None:
    method, path, body = {**ENDPOINTS, "me": ("get", lambda p: ME, None)}[action]
    before = row_counts()

    response = call(None, method, path(payment), body)

    assert error_body(response, 401) == {"detail": "Authentication credentials were not provided."}
    assert response["WWW-Authenticate"] == f'Bearer realm="{REALM}"'
    assert row_counts() == before


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        pytest.param("put", detail_url, "GET, HEAD, OPTIONS", id="put-payment"),
        pytest.param("patch", detail_url, "GET, HEAD, OPTIONS", id="patch-payment"),
        pytest.param("delete", detail_url, "GET, HEAD, OPTIONS", id="delete-payment"),
        pytest.param("delete", lambda _: LIST, "GET, POST, HEAD, OPTIONS", id="delete-list"),
        pytest.param("get", refund_url, "POST, OPTIONS", id="get-refund"),
    ],
)
def test_methods_the_api_does_not_offer_are_not_allowed(
    call: Callable[..., Any],
    error_body: Callable[[Any, int], dict[str, Any]],
    row_counts: Callable[[], dict[str, int]],
    payment: Payment,
    method: str,
    path: Callable[[Any], str],
    allowed: str,
) -> None:
    before = row_counts()

    response = call(APP_WRITER, method, path(payment.id), {"amount": "1.00"})

    assert error_body(response, 405) == {"detail": f'Method "{method.upper()}" not allowed.'}
    assert response["Allow"] == allowed
    assert row_counts() == before
    refresh(payment)
    assert (payment.amount, payment.status) == (Decimal("100.00"), "captured")


# --- /api/me/ -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("caller", "expected"),
    [
        pytest.param(
            READER,
            {
                "tid": TENANT_A,
                "oid": user_oid(TENANT_A),
                "app_id": CLIENT_APP_ID,
                "scopes": ["Payments.Read"],
                "roles": [],
                "is_app_only": False,
                "token_version": "2.0",
                "name": "Ada Lovelace",
                "preferred_username": "ada@contoso.example",
            },
            id="delegated",
        ),
        pytest.param(
            Caller(scopes=("Payments.Write", "Payments.Read"), roles=("Payments.Admin",)).in_tenant(
                TENANT_B
            ),
            {
                "tid": TENANT_B,
                "oid": user_oid(TENANT_B),
                "app_id": CLIENT_APP_ID,
                "scopes": ["Payments.Read", "Payments.Write"],
                "roles": ["Payments.Admin"],
                "is_app_only": False,
                "token_version": "2.0",
                "name": "Ada Lovelace",
                "preferred_username": "ada@contoso.example",
            },
            id="delegated-with-user-role-in-tenant-b",
        ),
        pytest.param(
            UNRELATED_USER,
            {
                "tid": TENANT_A,
                "oid": user_oid(TENANT_A),
                "app_id": CLIENT_APP_ID,
                "scopes": ["User.Read"],
                "roles": [],
                "is_app_only": False,
                "token_version": "2.0",
                "name": "Ada Lovelace",
                "preferred_username": "ada@contoso.example",
            },
            id="any-valid-token-even-without-payments-permissions",
        ),
        pytest.param(
            Caller(app_only=True, roles=("Payments.ReadWrite.All", "Payments.Read.All")),
            {
                "tid": TENANT_A,
                "oid": app_oid(TENANT_A),
                "app_id": CLIENT_APP_ID,
                "scopes": [],
                "roles": ["Payments.Read.All", "Payments.ReadWrite.All"],
                "is_app_only": True,
                "token_version": "2.0",
                "name": None,
                "preferred_username": None,
            },
            id="app-only",
        ),
    ],
)
def test_me_describes_the_caller_as_the_api_sees_it(
    call: Callable[..., Any], caller: Caller, expected: dict[str, Any]
) -> None:
    response = call(caller, "get", ME)

    assert response.status_code == 200
    assert response.json() == expected


def test_me_reports_a_v1_tokens_version_and_app_id(
    api_client: APIClient, fake_entra: FakeEntra
) -> None:
    token = fake_entra.token(version="1.0", scopes=("Payments.Read",))

    response = api_client.get(ME, HTTP_AUTHORIZATION=f"Bearer {token}")

    assert response.status_code == 200
    assert (response.json()["token_version"], response.json()["app_id"]) == ("1.0", CLIENT_APP_ID)


# --- tenants --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("caller", "method", "path", "body", "key"),
    [
        pytest.param(READER, "get", detail_url, None, None, id="retrieve-delegated"),
        pytest.param(APP_READER, "get", detail_url, None, None, id="retrieve-app"),
        pytest.param(REFUNDER, "post", refund_url, {"amount": "1.00"}, None, id="refund-delegated"),
        pytest.param(APP_WRITER, "post", refund_url, {"amount": "1.00"}, None, id="refund-app"),
        pytest.param(
            REFUNDER,
            "post",
            refund_url,
            {"amount": "1.00"},
            "k-1",
            id="refund-with-idempotency-key",
        ),
    ],
)
def test_another_tenants_payment_is_answered_exactly_like_a_missing_one(
    call: Callable[..., Any],
    error_body: Callable[[Any, int], dict[str, Any]],
    row_counts: Callable[[], dict[str, int]],
    payment: Payment,
    caller: Caller,
    method: str,
    path: Callable[[Any], str],
    body: Any,
    key: str | None,
) -> None:
    intruder = caller.in_tenant(TENANT_B)
    headers = {"Idempotency_Key": key} if key else {}
    before = row_counts()

    theirs = call(intruder, method, path(payment.id), body, **headers)
    missing = call(intruder, method, path(MISSING_ID), body, **headers)

    assert error_body(theirs, 404) == error_body(missing, 404) == {"detail": "Not found."}
    assert theirs.headers.keys() == missing.headers.keys()
    assert row_counts() == before
    refresh(payment)
    assert (payment.refunded_amount, payment.status) == (0, "captured")


def test_a_malformed_payment_id_is_answered_as_missing(
    call: Callable[..., Any], error_body: Callable[[Any, int], dict[str, Any]]
) -> None:
    assert error_body(call(READER, "get", detail_url("not-a-uuid")), 404) == {
        "detail": "Not found."
    }


@pytest.mark.parametrize(
    "caller", [pytest.param(READER, id="delegated"), pytest.param(APP_READER, id="app-only")]
)
def test_list_never_shows_another_tenants_payments(
    call: Callable[..., Any], caller: Caller
) -> None:
    ours = PaymentFactory.create_batch(2, tenant_id=TENANT_A)
    theirs = PaymentFactory.create_batch(3, tenant_id=TENANT_B)
    RefundFactory(tenant_id=TENANT_B, payment=theirs[0])

    seen_by_a = call(caller, "get", LIST, {"page_size": MAX_PAGE_SIZE})
    seen_by_b = call(caller.in_tenant(TENANT_B), "get", LIST, {"page_size": MAX_PAGE_SIZE})

    assert sorted(ids(seen_by_a)) == sorted(str(p.id) for p in ours)
    assert sorted(ids(seen_by_b)) == sorted(str(p.id) for p in theirs)
    assert {row["tenant_id"] for row in seen_by_b.json()["results"]} == {TENANT_B}


@pytest.mark.parametrize(
    "caller",
    [
        pytest.param(WRITER, id="delegated"),
        pytest.param(APP_WRITER, id="app-only"),
        pytest.param(WRITER.with_claims(azp=OTHER_CLIENT_APP_ID), id="delegated-other-client"),
    ],
)
def test_a_created_payment_belongs_to_the_callers_tenant_and_is_attributed_to_the_caller(
    call: Callable[..., Any], caller: Caller
) -> None:
    in_b = caller.in_tenant(TENANT_B)

    response = call(in_b, "post", LIST, {"amount": "5.00", "currency": "USD"})

    assert response.status_code == 201, response.content
    with all_tenants_context():
        created = Payment.all_tenants.get(pk=response.json()["id"])
    assert (str(created.tenant_id), created.created_by_oid, created.created_by_app_id) == (
        TENANT_B,
        in_b.oid,
        in_b.app_id,
    )
    assert response.json()["tenant_id"] == TENANT_B
    assert ids(call(READER, "get", LIST)) == []
    assert ids(call(READER.in_tenant(TENANT_B), "get", LIST)) == [str(created.id)]


def test_a_refund_belongs_to_the_payments_tenant_and_is_attributed_to_the_refunder(
    call: Callable[..., Any],
) -> None:
    payment = PaymentFactory(tenant_id=TENANT_B, amount=Decimal("40.00"))
    refunder = REFUNDER.in_tenant(TENANT_B)

    response = call(refunder, "post", refund_url(payment.id), {"amount": "15.00"})

    assert response.status_code == 201, response.content
    with all_tenants_context():
        refund = Refund.all_tenants.get()
    assert (str(refund.tenant_id), refund.created_by_oid, refund.created_by_app_id) == (
        TENANT_B,
        refunder.oid,
        CLIENT_APP_ID,
    )


# --- pagination and filtering ---------------------------------------------------------------


def test_list_is_newest_first_and_the_next_cursor_walks_every_page(
    call: Callable[..., Any],
) -> None:
    oldest_first = [PaymentFactory(created_at=A_DAY + timedelta(minutes=i)) for i in range(5)]
    PaymentFactory(tenant_id=TENANT_B, created_at=A_DAY + timedelta(minutes=2))

    pages = [call(READER, "get", LIST, {"page_size": 2})]
    while pages[-1].json()["next"]:
        pages.append(call(READER, "get", pages[-1].json()["next"]))

    assert [p.status_code for p in pages] == [200, 200, 200]
    assert [ids(p) for p in pages] == [
        [str(p.id) for p in oldest_first[4:2:-1]],
        [str(p.id) for p in oldest_first[2:0:-1]],
        [str(oldest_first[0].id)],
    ]
    assert pages[0].json()["results"][0] == payment_json(oldest_first[4])
    assert pages[0].json()["previous"] is None and pages[1].json()["previous"]


def test_payments_created_in_the_same_instant_are_neither_lost_nor_repeated_across_pages(
    call: Callable[..., Any],
) -> None:
    same_instant = {str(PaymentFactory(created_at=A_DAY).id) for _ in range(5)}

    seen: list[str] = []
    response = call(READER, "get", LIST, {"page_size": 2})
    while True:
        seen += ids(response)
        if not response.json()["next"]:
            break
        response = call(READER, "get", response.json()["next"])

    assert sorted(seen) == sorted(same_instant)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        pytest.param({}, PAGE_SIZE, id="default"),
        pytest.param({"page_size": 7}, 7, id="asked"),
        pytest.param({"page_size": MAX_PAGE_SIZE}, MAX_PAGE_SIZE, id="the-maximum"),
        pytest.param({"page_size": MAX_PAGE_SIZE + 100}, MAX_PAGE_SIZE, id="capped"),
        pytest.param({"page_size": "0" * 30 + "7"}, 7, id="leading-zeros"),
    ],
)
def test_page_size_is_honoured_up_to_its_cap(
    call: Callable[..., Any], params: dict[str, Any], expected: int
) -> None:
    PaymentFactory.create_batch(MAX_PAGE_SIZE + 1)

    response = call(READER, "get", LIST, params)

    assert response.status_code == 200
    assert len(response.json()["results"]) == expected
    assert response.json()["next"]


@pytest.fixture
def one_payment_per_status(db: None) -> dict[str, Payment]:
    """A captured, a partially refunded and a refunded payment of tenant A, and noise in B."""
    captured = PaymentFactory(amount=Decimal("10.00"))
    partial = RefundFactory(payment=PaymentFactory(amount=Decimal("10.00")), amount=Decimal("4"))
    full = RefundFactory(payment=PaymentFactory(amount=Decimal("10.00")), amount=Decimal("10"))
    RefundFactory(tenant_id=TENANT_B, amount=Decimal("100.00"))
    PaymentFactory(tenant_id=TENANT_B)
    return {
        "captured": captured,
        "partially_refunded": partial.payment,
        "refunded": full.payment,
    }


@pytest.mark.parametrize("wanted", ["captured", "partially_refunded", "refunded"])
def test_list_filters_by_status(
    call: Callable[..., Any], one_payment_per_status: dict[str, Payment], wanted: str
) -> None:
    response = call(READER, "get", LIST, {"status": wanted})

    assert response.status_code == 200
    assert ids(response) == [str(one_payment_per_status[wanted].id)]
    assert response.json()["results"][0]["status"] == wanted


@pytest.mark.parametrize(
    ("params", "expected_days"),
    [
        pytest.param({"created_after": "2026-01-02T00:00:00Z"}, [3, 2], id="after-is-inclusive"),
        pytest.param({"created_before": "2026-01-03T00:00:00Z"}, [2, 1], id="before-is-exclusive"),
        pytest.param(
            {"created_after": "2026-01-02T00:00:00Z", "created_before": "2026-01-03T00:00:00Z"},
            [2],
            id="between",
        ),
        pytest.param({"created_after": "2026-01-02T01:00:00+01:00"}, [3, 2], id="with-an-offset"),
        pytest.param({"created_after": "2026-01-04T00:00:00Z"}, [], id="none-after"),
    ],
)
def test_list_filters_by_creation_time(
    call: Callable[..., Any], params: dict[str, str], expected_days: list[int]
) -> None:
    made = {day: PaymentFactory(created_at=datetime(2026, 1, day, tzinfo=UTC)) for day in (1, 2, 3)}
    PaymentFactory(tenant_id=TENANT_B, created_at=datetime(2026, 1, 2, tzinfo=UTC))

    response = call(READER, "get", LIST, params)

    assert response.status_code == 200
    assert ids(response) == [str(made[day].id) for day in expected_days]


def test_filters_combine_with_the_cursor(call: Callable[..., Any]) -> None:
    for day in (1, 2, 3, 4):
        PaymentFactory(created_at=datetime(2026, 1, day, tzinfo=UTC))
    RefundFactory(payment=PaymentFactory(created_at=datetime(2026, 1, 3, 12, tzinfo=UTC)))
    params = {"status": "captured", "created_after": "2026-01-02T00:00:00Z", "page_size": 2}

    first = call(READER, "get", LIST, params)
    second = call(READER, "get", first.json()["next"])

    days = [row["created_at"][:10] for row in first.json()["results"] + second.json()["results"]]
    assert days == ["2026-01-04", "2026-01-03", "2026-01-02"]
    assert second.json()["next"] is None


STATUS_HELP = "Use one of: captured, partially_refunded, refunded."
DATE_HELP = "Use an ISO 8601 date-time with a time zone, e.g. 2026-01-31T00:00:00Z."


@pytest.mark.parametrize(
    ("params", "errors"),
    [
        pytest.param({"status": "bogus"}, {"status": [STATUS_HELP]}, id="unknown-status"),
        pytest.param({"status": "CAPTURED"}, {"status": [STATUS_HELP]}, id="status-wrong-case"),
        pytest.param({"status": ""}, {"status": [STATUS_HELP]}, id="empty-status"),
        pytest.param({"created_after": "yesterday"}, {"created_after": [DATE_HELP]}, id="words"),
        pytest.param(
            {"created_after": "2026-01-31"}, {"created_after": [DATE_HELP]}, id="date-only"
        ),
        pytest.param(
            {"created_before": "2026-01-31T00:00:00"}, {"created_before": [DATE_HELP]}, id="naive"
        ),
        pytest.param(
            {"created_before": "2026-13-01T00:00:00Z"},
            {"created_before": [DATE_HELP]},
            id="no-such-month",
        ),
        pytest.param(
            {"status": "nope", "created_after": "x", "created_before": "y"},
            {"status": [STATUS_HELP], "created_after": [DATE_HELP], "created_before": [DATE_HELP]},
            id="all-at-once",
        ),
    ],
)
def test_invalid_filters_are_refused_with_a_message_per_parameter(
    call: Callable[..., Any],
    error_body: Callable[[Any, int], dict[str, Any]],
    payment: Payment,
    params: dict[str, str],
    errors: dict[str, list[str]],
) -> None:
    response = call(READER, "get", LIST, params)

    assert error_body(response, 400) == {"detail": "The request is invalid.", **errors}


# --- money ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "currency", "shown", "zero"),
    [
        ("12.5", "EUR", "12.50", "0.00"),
        ("12.50", "EUR", "12.50", "0.00"),
        ("7", "USD", "7.00", "0.00"),
        ("1250", "JPY", "1250", "0"),
        ("12.345", "KWD", "12.345", "0.000"),
        ("0.5", "BHD", "0.500", "0.000"),
        ("0.01", "EUR", "0.01", "0.00"),
    ],
)
def test_amounts_are_strings_with_the_currencys_exact_precision(
    call: Callable[..., Any], sent: str, currency: str, shown: str, zero: str
) -> None:
    created = call(WRITER, "post", LIST, {"amount": sent, "currency": currency})
    payment_id = created.json()["id"]

    retrieved = call(READER, "get", detail_url(payment_id))
    listed = call(READER, "get", LIST)

    assert created.status_code == 201, created.content
    for body in (created.json(), retrieved.json(), listed.json()["results"][0]):
        assert (body["amount"], body["refunded_amount"], body["currency"]) == (
            shown,
            zero,
            currency,
        )


@pytest.mark.parametrize(
    ("amount", "currency", "refund", "shown"),
    [
        ("1250", "JPY", "250", "250"),
        ("12.345", "KWD", "0.5", "0.500"),
        ("10.00", "EUR", "2.5", "2.50"),
    ],
)
def test_refund_amounts_use_the_payments_currency_precision(
    call: Callable[..., Any], amount: str, currency: str, refund: str, shown: str
) -> None:
    payment = PaymentFactory(amount=Decimal(amount), currency=currency)

    response = call(REFUNDER, "post", refund_url(payment.id), {"amount": refund})

    assert response.status_code == 201, response.content
    assert response.json()["amount"] == shown
    assert call(READER, "get", detail_url(payment.id)).json()["refunded_amount"] == shown


# --- refunds --------------------------------------------------------------------------------


def test_partial_refunds_move_the_payment_from_captured_to_partially_refunded_to_refunded(
    call: Callable[..., Any], payment: Payment
) -> None:
    seen = [call(READER, "get", detail_url(payment.id)).json()]
    for amount in ("30.00", "45.50", "24.50"):
        response = call(REFUNDER, "post", refund_url(payment.id), {"amount": amount})
        assert response.status_code == 201, response.content
        seen.append(call(READER, "get", detail_url(payment.id)).json())

    assert [(s["status"], s["refunded_amount"]) for s in seen] == [
        ("captured", "0.00"),
        ("partially_refunded", "30.00"),
        ("partially_refunded", "75.50"),
        ("refunded", "100.00"),
    ]
    with all_tenants_context():
        assert sorted(Refund.all_tenants.values_list("amount", flat=True)) == [
            Decimal("24.50"),
            Decimal("30.00"),
            Decimal("45.50"),
        ]


def test_a_single_refund_of_the_whole_amount_refunds_the_payment(
    call: Callable[..., Any], payment: Payment
) -> None:
    response = call(APP_WRITER, "post", refund_url(payment.id), {"amount": "100"})

    assert response.status_code == 201, response.content
    assert call(READER, "get", detail_url(payment.id)).json()["status"] == "refunded"


@pytest.mark.parametrize(
    ("amount", "refunds"),
    [
        pytest.param("0.30", ["0.10", "0.20"], id="0.10+0.20"),
        pytest.param("0.60", ["0.10", "0.20", "0.30"], id="0.10+0.20+0.30"),
        pytest.param("1.00", ["0.70", "0.30"], id="0.70+0.30"),
        pytest.param("0.003", ["0.001", "0.002"], id="KWD-0.001+0.002"),
    ],
)
def test_refunds_adding_up_exactly_to_the_amount_refund_the_payment_in_full(
    call: Callable[..., Any], amount: str, refunds: list[str]
) -> None:
    currency = "KWD" if len(amount.split(".")[1]) == 3 else "EUR"
    payment = PaymentFactory(amount=Decimal(amount), currency=currency)

    answers = [
        call(REFUNDER, "post", refund_url(payment.id), {"amount": part}).status_code
        for part in refunds
    ]

    assert answers == [201] * len(refunds)
    body = call(READER, "get", detail_url(payment.id)).json()
    assert (body["status"], body["refunded_amount"]) == ("refunded", amount)


@pytest.mark.parametrize(
    ("earlier", "attempt", "remaining"),
    [
        pytest.param([], "100.01", "100.00", id="more-than-the-payment"),
        pytest.param(["60.00"], "40.01", "40.00", id="past-the-amount-after-a-partial-refund"),
        pytest.param(["60.00", "40.00"], "0.01", "0.00", id="anything-after-a-full-refund"),
    ],
)
def test_refunds_summing_past_the_amount_are_refused_with_nothing_created(
    call: Callable[..., Any],
    error_body: Callable[[Any, int], dict[str, Any]],
    row_counts: Callable[[], dict[str, int]],
    payment: Payment,
    earlier: list[str],
    attempt: str,
    remaining: str,
) -> None:
    for amount in earlier:
        assert call(REFUNDER, "post", refund_url(payment.id), {"amount": amount}).status_code == 201
    before_payment = call(READER, "get", detail_url(payment.id)).json()
    before = row_counts()

    response = call(REFUNDER, "post", refund_url(payment.id), {"amount": attempt})

    assert error_body(response, 409) == {
        "detail": "The refund would exceed the captured amount: at most "
        f"{remaining} EUR remains refundable."
    }
    assert row_counts() == before
    assert call(READER, "get", detail_url(payment.id)).json() == before_payment


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason=CONCURRENCY_NEEDS_POSTGRESQL)
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("refunders", "each", "succeeding"),
    [
        pytest.param(6, "40.00", 2, id="six-refunds-of-40-on-100"),
        pytest.param(2, "60.00", 1, id="two-refunds-of-60-on-100"),
        pytest.param(8, "12.50", 8, id="eight-refunds-that-fit-exactly"),
    ],
)
def test_concurrent_refunds_never_exceed_the_amount(
    fake_entra: FakeEntra,
    post_concurrently: Callable[..., list[Any]],
    refunders: int,
    each: str,
    succeeding: int,
) -> None:
    payment = PaymentFactory(amount=Decimal("100.00"))
    headers = REFUNDER.headers(fake_entra)

    responses = post_concurrently([(refund_url(payment.id), {"amount": each}, headers)] * refunders)

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * succeeding + [409] * (refunders - succeeding)
    refresh(payment)
    refunded = Decimal(each) * succeeding
    assert payment.refunded_amount == refunded <= payment.amount
    with all_tenants_context():
        assert (
            sorted(Refund.all_tenants.values_list("amount", flat=True))
            == [Decimal(each)] * succeeding
        )
    assert payment.status == ("refunded" if refunded == payment.amount else "partially_refunded")
