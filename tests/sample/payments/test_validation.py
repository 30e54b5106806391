"""Request validation: strict money, known fields only, and nothing created on a 4xx.

See docs/sample.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.db import IntegrityError, transaction
from django.db.models import F

from entra_auth.conf import MAX_REQUEST_BODY_BYTES
from entra_auth.tenancy import all_tenants_context, tenant_context
from payments.models import Payment
from payments.serializers import DESCRIPTION_MAX_LENGTH
from tests.fake_entra import TENANT_A, FakeEntra
from tests.sample.factories import REFUNDER, WRITER, PaymentFactory, refresh
from tests.sample.paths import LIST, refund_url

pytestmark = pytest.mark.django_db

INVALID = "The request is invalid."
AS_STRING = 'Give the amount as a string, e.g. "12.50".'
PLAIN_DECIMAL = (
    'The amount must be a plain decimal number such as "12.50" '
    "(no sign, exponent or separators; at most 15 integer digits)."
)
POSITIVE = "The amount must be greater than zero."
CURRENCY_CODE = "Use an ISO 4217 currency code such as EUR."
REQUIRED = "This field is required."
NOT_NULL = "This field may not be null."
UNKNOWN = "Unknown field."
NOT_A_STRING = "Not a valid string."
JSON_OBJECT = "Expected a JSON object."


def post_raw(api_client: Any, fake_entra: FakeEntra, path: str, body: bytes, **kwargs: Any) -> Any:
    kwargs.setdefault("content_type", "application/json")
    return api_client.post(path, body, **REFUNDER.headers(fake_entra), **kwargs)


# --- creating a payment ---------------------------------------------------------------------

EUR = {"currency": "EUR"}
BAD_CREATE_BODIES = [
    # amount
    pytest.param({"amount": "-5.00", **EUR}, {"amount": [PLAIN_DECIMAL]}, id="negative"),
    pytest.param({"amount": "0", **EUR}, {"amount": [POSITIVE]}, id="zero"),
    pytest.param({"amount": "0.00", **EUR}, {"amount": [POSITIVE]}, id="zero-with-decimals"),
    pytest.param({"amount": "twelve", **EUR}, {"amount": [PLAIN_DECIMAL]}, id="non-numeric"),
    pytest.param({"amount": "", **EUR}, {"amount": [PLAIN_DECIMAL]}, id="empty"),
    pytest.param({"amount": "1e3", **EUR}, {"amount": [PLAIN_DECIMAL]}, id="exponent"),
    pytest.param({"amount": "1E3", **EUR}, {"amount": [PLAIN_DECIMAL]}, id="exponent-upper"),
    pytest.param({"amount": "+5", **EUR}, {"amount": [PLAIN_DECIMAL]}, id="plus-sign"),
    pytest.param({"amount": " 5", **EUR}, {"amount": [PLAIN_DECIMAL]}, id="leading-space"),
    pytest.param({"amount": "5 ", **EUR}, {"amount": [PLAIN_DECIMAL]}, id="trailing-space"),
    pytest.param({"amount": "5\n", **EUR}, {"amount": [PLAIN_DECIMAL]}, id="trailing-newline"),
    pytest.param({"amount": "1,000.00", **EUR}, {"amount": [PLAIN_DECIMAL]}, id="separator"),
    pytest.param({"amount": "12,50", **EUR}, {"amount": [PLAIN_DECIMAL]}, id="decimal-comma"),
    pytest.param({"amount": "5.", **EUR}, {"amount": [PLAIN_DECIMAL]}, id="bare-point"),
    pytest.param({"amount": ".5", **EUR}, {"amount": [PLAIN_DECIMAL]}, id="no-integer-part"),
    pytest.param({"amount": "05", **EUR}, {"amount": [PLAIN_DECIMAL]}, id="leading-zero"),
    pytest.param({"amount": "NaN", **EUR}, {"amount": [PLAIN_DECIMAL]}, id="nan"),
    pytest.param({"amount": "Infinity", **EUR}, {"amount": [PLAIN_DECIMAL]}, id="infinity"),
    pytest.param({"amount": "١٢", **EUR}, {"amount": [PLAIN_DECIMAL]}, id="non-ascii-digits"),
    pytest.param({"amount": "0x10", **EUR}, {"amount": [PLAIN_DECIMAL]}, id="hexadecimal"),
    pytest.param({"amount": "1_000", **EUR}, {"amount": [PLAIN_DECIMAL]}, id="underscore"),
    pytest.param({"amount": 12.5, **EUR}, {"amount": [AS_STRING]}, id="json-number"),
    pytest.param({"amount": 12, **EUR}, {"amount": [AS_STRING]}, id="json-integer"),
    pytest.param({"amount": True, **EUR}, {"amount": [AS_STRING]}, id="json-boolean"),
    pytest.param({"amount": ["12.50"], **EUR}, {"amount": [AS_STRING]}, id="json-list"),
    pytest.param({"amount": None, **EUR}, {"amount": [NOT_NULL]}, id="null"),
    pytest.param(
        {"amount": "1.001", **EUR},
        {"amount": ["EUR amounts have at most 2 decimal places."]},
        id="three-decimals-for-EUR",
    ),
    pytest.param(
        {"amount": "12.500", **EUR},
        {"amount": ["EUR amounts have at most 2 decimal places."]},
        id="trailing-zero-past-EUR-precision",
    ),
    pytest.param(
        {"amount": "1.5", "currency": "JPY"},
        {"amount": ["JPY amounts have at most 0 decimal places."]},
        id="decimals-for-JPY",
    ),
    pytest.param(
        {"amount": "1.0001", "currency": "KWD"},
        {"amount": ["KWD amounts have at most 3 decimal places."]},
        id="four-decimals-for-KWD",
    ),
    pytest.param(
        {"amount": "1234567890123456", **EUR}, {"amount": [PLAIN_DECIMAL]}, id="16-integer-digits"
    ),
    pytest.param({"currency": "EUR"}, {"amount": [REQUIRED]}, id="missing-amount"),
    # currency
    pytest.param({"amount": "5.00", "currency": "XYZ"}, {"currency": [CURRENCY_CODE]}, id="XYZ"),
    pytest.param({"amount": "5.00", "currency": "eur"}, {"currency": [CURRENCY_CODE]}, id="lower"),
    pytest.param({"amount": "5.00", "currency": "XAU"}, {"currency": [CURRENCY_CODE]}, id="gold"),
    pytest.param({"amount": "5.00", "currency": "XTS"}, {"currency": [CURRENCY_CODE]}, id="test"),
    pytest.param(
        {"amount": "5.00", "currency": ""},
        {"currency": ["This field may not be blank."]},
        id="blank",
    ),
    pytest.param(
        {"amount": "5.00", "currency": "EURO"},
        {"currency": ["Ensure this field has no more than 3 characters."]},
        id="four-letters",
    ),
    pytest.param({"amount": "5.00", "currency": " EU"}, {"currency": [CURRENCY_CODE]}, id="space"),
    pytest.param({"amount": "5.00", "currency": 978}, {"currency": [CURRENCY_CODE]}, id="numeric"),
    pytest.param({"amount": "5.00", "currency": None}, {"currency": [NOT_NULL]}, id="null-cur"),
    pytest.param({"amount": "5.00"}, {"currency": [REQUIRED]}, id="missing-currency"),
    pytest.param({}, {"amount": [REQUIRED], "currency": [REQUIRED]}, id="empty-object"),
    # description
    pytest.param(
        {"amount": "5.00", **EUR, "description": "x" * (DESCRIPTION_MAX_LENGTH + 1)},
        {"description": ["Ensure this field has no more than 500 characters."]},
        id="description-over-500",
    ),
    pytest.param(
        {"amount": "5.00", **EUR, "description": None},
        {"description": [NOT_NULL]},
        id="description-null",
    ),
    pytest.param(
        {"amount": "5.00", **EUR, "description": ["Coffee"]},
        {"description": [NOT_A_STRING]},
        id="description-list",
    ),
    pytest.param(
        {"amount": "5.00", **EUR, "description": {"text": "Coffee"}},
        {"description": [NOT_A_STRING]},
        id="description-object",
    ),
    pytest.param(
        {"amount": "5.00", **EUR, "description": True},
        {"description": [NOT_A_STRING]},
        id="description-boolean",
    ),
    pytest.param(
        {"amount": "5.00", **EUR, "description": 123},
        {"description": [NOT_A_STRING]},
        id="description-number",
    ),
    pytest.param(
        {"amount": "5.00", **EUR, "description": 1.5},
        {"description": [NOT_A_STRING]},
        id="description-float",
    ),
    # fields the client may not set
    pytest.param({"amount": "5.00", **EUR, "note": "x"}, {"note": [UNKNOWN]}, id="unknown-field"),
    pytest.param(
        {"amount": "5.00", **EUR, "tenant_id": "0e9d8c7b-6a59-4838-8271-6f5e4d3c2b1a"},
        {"tenant_id": [UNKNOWN]},
        id="tenant_id",
    ),
    pytest.param(
        {"amount": "5.00", **EUR, "status": "refunded", "refunded_amount": "5.00"},
        {"refunded_amount": [UNKNOWN], "status": [UNKNOWN]},
        id="status-and-refunded_amount",
    ),
    pytest.param(
        {"amount": "5.00", **EUR, "created_by_oid": "someone-else"},
        {"created_by_oid": [UNKNOWN]},
        id="created_by_oid",
    ),
    pytest.param(
        {"amount": "5.00", **EUR, "id": "00000000-0000-4000-8000-000000000001"},
        {"id": [UNKNOWN]},
        id="id",
    ),
]


@pytest.mark.parametrize(("body", "errors"), BAD_CREATE_BODIES)
def test_an_invalid_payment_is_refused_field_by_field_with_nothing_created(
    call: Callable[..., Any],
    error_body: Callable[[Any, int], dict[str, Any]],
    row_counts: Callable[[], dict[str, int]],
    body: dict[str, Any],
    errors: dict[str, list[str]],
) -> None:
    before = row_counts()

    response = call(WRITER, "post", LIST, body, Idempotency_Key="order-42")

    assert error_body(response, 400) == {"detail": INVALID, **errors}
    assert row_counts() == before


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(b"{", {"detail": "The request body is not valid JSON."}, id="not-json"),
        pytest.param(b"amount=5", {"detail": "The request body is not valid JSON."}, id="form"),
        pytest.param(
            b'{"amount": "5.00", "currency": "EUR",}',
            {"detail": "The request body is not valid JSON."},
            id="trailing-comma",
        ),
        pytest.param(
            b'{"amount": NaN, "currency": "EUR"}',
            {"detail": "The request body is not valid JSON."},
            id="json-nan",
        ),
        pytest.param(
            b"\xff\xfe{}", {"detail": "The request body is not valid JSON."}, id="not-utf-8"
        ),
        pytest.param(
            b'[{"amount": "5.00", "currency": "EUR"}]',
            {"detail": INVALID, "non_field_errors": [JSON_OBJECT]},
            id="json-array",
        ),
        pytest.param(
            b'"5.00 EUR"', {"detail": INVALID, "non_field_errors": [JSON_OBJECT]}, id="json-string"
        ),
        pytest.param(
            b"5", {"detail": INVALID, "non_field_errors": [JSON_OBJECT]}, id="json-number"
        ),
        pytest.param(
            b"null", {"detail": INVALID, "non_field_errors": ["No data provided"]}, id="json-null"
        ),
        pytest.param(
            b"", {"detail": INVALID, "amount": [REQUIRED], "currency": [REQUIRED]}, id="empty-body"
        ),
    ],
)
def test_a_body_that_is_not_a_json_object_is_refused_with_nothing_created(
    api_client: Any,
    fake_entra: FakeEntra,
    error_body: Callable[[Any, int], dict[str, Any]],
    row_counts: Callable[[], dict[str, int]],
    raw: bytes,
    expected: dict[str, Any],
) -> None:
    before = row_counts()

    response = post_raw(api_client, fake_entra, LIST, raw)

    assert error_body(response, 400) == expected
    assert row_counts() == before


def test_a_body_of_another_media_type_is_refused_with_nothing_created(
    api_client: Any,
    fake_entra: FakeEntra,
    error_body: Callable[[Any, int], dict[str, Any]],
    row_counts: Callable[[], dict[str, int]],
) -> None:
    before = row_counts()

    response = post_raw(
        api_client,
        fake_entra,
        LIST,
        b"amount=5.00&currency=EUR",
        content_type="application/x-www-form-urlencoded",
    )

    assert error_body(response, 415) == {
        "detail": 'Unsupported media type "application/x-www-form-urlencoded" in request.'
    }
    assert row_counts() == before


@pytest.mark.parametrize(
    "path", [pytest.param(LIST, id="create"), pytest.param("refund", id="refund")]
)
def test_a_body_over_64_kib_is_refused_as_too_large_with_nothing_created(
    api_client: Any,
    fake_entra: FakeEntra,
    error_body: Callable[[Any, int], dict[str, Any]],
    row_counts: Callable[[], dict[str, int]],
    path: str,
) -> None:
    if path == "refund":
        path = refund_url(PaymentFactory().id)
    raw = json.dumps(
        {"amount": "5.00", "currency": "EUR", "description": "x" * MAX_REQUEST_BODY_BYTES}
    ).encode()
    before = row_counts()

    response = post_raw(api_client, fake_entra, path, raw)

    assert MAX_REQUEST_BODY_BYTES == 64 * 1024 < len(raw)
    assert error_body(response, 413) == {"detail": "The request body is too large."}
    assert row_counts() == before


@pytest.mark.parametrize(
    ("body", "stored"),
    [
        pytest.param({"amount": "0.01", "currency": "EUR"}, ("0.01", "EUR", ""), id="smallest-EUR"),
        pytest.param({"amount": "1", "currency": "JPY"}, ("1", "JPY", ""), id="smallest-JPY"),
        pytest.param(
            {"amount": "0.001", "currency": "KWD"}, ("0.001", "KWD", ""), id="smallest-KWD"
        ),
        pytest.param(
            {"amount": "5.00", "currency": "EUR", "description": "x" * DESCRIPTION_MAX_LENGTH},
            ("5.00", "EUR", "x" * DESCRIPTION_MAX_LENGTH),
            id="description-of-500",
        ),
        pytest.param(
            {"amount": "5.00", "currency": "EUR", "description": ""},
            ("5.00", "EUR", ""),
            id="empty-description",
        ),
        pytest.param(
            {"amount": "5.00", "currency": "EUR", "description": "Café ☕ 日本"},
            ("5.00", "EUR", "Café ☕ 日本"),
            id="unicode-description",
        ),
    ],
)
def test_valid_edge_values_are_accepted(
    call: Callable[..., Any], body: dict[str, Any], stored: tuple[str, str, str]
) -> None:
    response = call(WRITER, "post", LIST, body)

    assert response.status_code == 201, response.content
    with all_tenants_context():
        payment = Payment.all_tenants.get()
    assert (payment.amount, payment.currency, payment.description) == (
        Decimal(stored[0]),
        stored[1],
        stored[2],
    )


@pytest.mark.parametrize(
    ("amount", "currency"),
    [
        pytest.param("999999999999999.99", "EUR", id="largest-EUR"),
        pytest.param("99999999999999.99", "EUR", id="16-significant-digits-EUR"),
        pytest.param("100000000000000.01", "EUR", id="a-cent-over-10^14-EUR"),
        pytest.param("123456789012345.678", "KWD", id="largest-KWD"),
        pytest.param("1234567890123.45", "EUR", id="15-significant-digits-EUR"),
        pytest.param("999999999999999", "JPY", id="largest-JPY"),
    ],
)
def test_a_large_amount_is_either_refused_or_stored_and_read_back_exactly(
    call: Callable[..., Any],
    row_counts: Callable[[], dict[str, int]],
    amount: str,
    currency: str,
) -> None:
    before = row_counts()

    created = call(WRITER, "post", LIST, {"amount": amount, "currency": currency})

    if created.status_code == 400:
        assert set(created.json()) == {"detail", "amount", "request_id"}
        assert row_counts() == before
        return
    assert created.status_code == 201, created.content
    retrieved = call(WRITER, "get", f"{LIST}{created.json()['id']}/")
    listed = call(WRITER, "get", LIST)
    assert (retrieved.status_code, listed.status_code) == (200, 200)
    assert created.json()["amount"] == retrieved.json()["amount"] == amount
    assert listed.json()["results"][0]["amount"] == amount


# --- refunding ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "body", "errors"),
    [
        pytest.param("EUR", {"amount": "-1.00"}, {"amount": [PLAIN_DECIMAL]}, id="negative"),
        pytest.param("EUR", {"amount": "0.00"}, {"amount": [POSITIVE]}, id="zero"),
        pytest.param("EUR", {"amount": "1e1"}, {"amount": [PLAIN_DECIMAL]}, id="exponent"),
        pytest.param("EUR", {"amount": 5}, {"amount": [AS_STRING]}, id="json-number"),
        pytest.param(
            "EUR",
            {"amount": "1.005"},
            {"amount": ["EUR amounts have at most 2 decimal places."]},
            id="three-decimals-for-EUR",
        ),
        pytest.param(
            "JPY",
            {"amount": "1.5"},
            {"amount": ["JPY amounts have at most 0 decimal places."]},
            id="decimals-for-JPY",
        ),
        pytest.param("EUR", {}, {"amount": [REQUIRED]}, id="missing-amount"),
        pytest.param("EUR", {"amount": None}, {"amount": [NOT_NULL]}, id="null-amount"),
        pytest.param(
            "EUR", {"amount": "1.00", "reason": "x"}, {"reason": [UNKNOWN]}, id="unknown-field"
        ),
        pytest.param(
            "EUR",
            {"amount": "1.00", "currency": "JPY"},
            {"currency": [UNKNOWN]},
            id="a-currency-of-its-own",
        ),
    ],
)
def test_an_invalid_refund_is_refused_field_by_field_with_nothing_created(
    call: Callable[..., Any],
    error_body: Callable[[Any, int], dict[str, Any]],
    row_counts: Callable[[], dict[str, int]],
    currency: str,
    body: dict[str, Any],
    errors: dict[str, list[str]],
) -> None:
    payment = PaymentFactory(amount=Decimal("100"), currency=currency)
    before = row_counts()

    response = call(REFUNDER, "post", refund_url(payment.id), body, Idempotency_Key="r1")

    assert error_body(response, 400) == {"detail": INVALID, **errors}
    assert row_counts() == before
    refresh(payment)
    assert (payment.refunded_amount, payment.status) == (0, "captured")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(b"{", {"detail": "The request body is not valid JSON."}, id="not-json"),
        pytest.param(
            b'["1.00"]', {"detail": INVALID, "non_field_errors": [JSON_OBJECT]}, id="json-array"
        ),
    ],
)
def test_a_refund_body_that_is_not_a_json_object_is_refused_with_nothing_created(
    api_client: Any,
    fake_entra: FakeEntra,
    error_body: Callable[[Any, int], dict[str, Any]],
    row_counts: Callable[[], dict[str, int]],
    raw: bytes,
    expected: dict[str, Any],
) -> None:
    payment = PaymentFactory()
    before = row_counts()

    response = post_raw(api_client, fake_entra, refund_url(payment.id), raw)

    assert error_body(response, 400) == expected
    assert row_counts() == before


# --- the database's own rules ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "refunded_amount"),
    [
        pytest.param(Decimal("0"), Decimal("0"), id="zero-amount"),
        pytest.param(Decimal("-1.00"), Decimal("0"), id="negative-amount"),
        pytest.param(Decimal("10.00"), Decimal("10.01"), id="refunded-past-the-amount"),
        pytest.param(Decimal("10.00"), Decimal("-0.01"), id="negative-refunded-amount"),
    ],
)
def test_the_database_refuses_amounts_the_api_would_refuse(
    amount: Decimal, refunded_amount: Decimal
) -> None:
    with tenant_context(TENANT_A):
        with pytest.raises(IntegrityError), transaction.atomic():
            Payment.objects.create(
                amount=amount,
                refunded_amount=refunded_amount,
                currency="EUR",
                created_by_oid="x",
                created_by_app_id="y",
            )


def test_the_database_refuses_an_update_refunding_past_the_amount() -> None:
    payment = PaymentFactory(amount=Decimal("10.00"))

    with tenant_context(str(payment.tenant_id)):
        with pytest.raises(IntegrityError), transaction.atomic():
            Payment.objects.filter(pk=payment.pk).update(
                refunded_amount=F("refunded_amount") + Decimal("10.01")
            )
