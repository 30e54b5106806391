"""The sample's audit trail: its own events recorded once, tenant denials on its payments.

Requests go through the whole stack (fake Entra tokens, authentication, the payments views,
the idempotency keys); the rows are then read back from ``AuditEvent``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from entra_auth.audit import AuditEvent, EventType, Outcome, Reason
from entra_auth.logging import JsonFormatter
from entra_auth.tenancy import all_tenants_context
from payments.models import Payment
from tests.audit_support import only_event
from tests.fake_entra import CLIENT_APP_ID, TENANT_A, TENANT_B, FakeEntra
from tests.sample.factories import READER, REFUNDER, WRITER, Caller, PaymentFactory, user_oid

pytestmark = pytest.mark.django_db

PAYMENTS = "/api/payments/"
CLIENT_ADDRESS = "198.51.100.23"
JWT_PREFIX = "eyJ"
NEW_PAYMENT = {"amount": "12.50", "currency": "EUR", "description": "Order 1001"}
PAYMENT_TYPE = "payments.payment"
AUDIT_LOG = "/admin/entra_auth/auditevent/"


@pytest.fixture
def send(api_client: APIClient, fake_entra: FakeEntra) -> Callable[..., Any]:
    """``send(method, path, caller, body=None, **meta)``: one JSON request from CLIENT_ADDRESS."""

    def request(method: str, path: str, caller: Caller, body: Any = None, **meta: str) -> Any:
        headers = {"REMOTE_ADDR": CLIENT_ADDRESS, **caller.headers(fake_entra), **meta}
        if body is None:
            return getattr(api_client, method)(path, **headers)
        return getattr(api_client, method)(path, body, format="json", **headers)

    return request


@pytest.mark.parametrize(
    ("method", "suffix", "caller", "body"),
    [
        pytest.param("get", "", READER, None, id="retrieve"),
        pytest.param("post", "refund/", REFUNDER, {"amount": "1.00"}, id="refund"),
    ],
)
def test_another_tenants_payment_is_a_404_recorded_as_tenant_denied(
    send, method, suffix, caller, body
):
    theirs = PaymentFactory(tenant_id=TENANT_B)

    response = send(method, f"{PAYMENTS}{theirs.pk}/{suffix}", caller, body)

    assert response.status_code == 404
    assert response.json()["detail"] == "Not found."
    event = only_event()
    assert event.event_type == EventType.TENANT_DENIED
    assert (event.outcome, event.reason) == (Outcome.DENIED, Reason.OTHER_TENANT)
    assert (event.object_type, event.object_id) == (PAYMENT_TYPE, str(theirs.pk))
    # The caller's tenant, never the owner's: the row says who tried.
    assert (event.tenant_id, event.subject_oid) == (TENANT_A, user_oid(TENANT_A))


@pytest.mark.parametrize("payment_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_a_payment_that_exists_nowhere_is_a_plain_404_with_no_event(send, payment_id):
    response = send("get", f"{PAYMENTS}{payment_id}/", READER)

    assert response.status_code == 404
    assert not AuditEvent.objects.exists()


def test_refund_without_the_admin_role_is_recorded_as_missing_role(send):
    payment = PaymentFactory()

    response = send("post", f"{PAYMENTS}{payment.pk}/refund/", WRITER, {"amount": "1.00"})

    assert response.status_code == 403
    event = only_event()
    assert (event.reason, event.missing) == (Reason.MISSING_ROLE, "Payments.Admin")


def test_payment_created_is_recorded_once_also_when_the_request_is_replayed(send):
    first = send("post", PAYMENTS, WRITER, NEW_PAYMENT, HTTP_IDEMPOTENCY_KEY="order-1001")
    replay = send("post", PAYMENTS, WRITER, NEW_PAYMENT, HTTP_IDEMPOTENCY_KEY="order-1001")

    assert first.status_code == replay.status_code == 201
    event = only_event()
    assert event.event_type == "payment_created"
    assert (event.outcome, event.reason) == (Outcome.SUCCESS, "")
    assert (event.object_type, event.object_id) == (PAYMENT_TYPE, first.json()["id"])
    assert (event.tenant_id, event.subject_oid, event.app_id) == (
        TENANT_A,
        user_oid(TENANT_A),
        CLIENT_APP_ID,
    )
    assert event.request_id == first["X-Request-ID"]
    assert (event.method, event.path, event.client_ip) == ("POST", PAYMENTS, CLIENT_ADDRESS)


def test_refund_is_recorded_as_payment_refunded(send):
    payment = PaymentFactory()

    response = send(
        "post",
        f"{PAYMENTS}{payment.pk}/refund/",
        REFUNDER,
        {"amount": "2.50"},
        HTTP_IDEMPOTENCY_KEY="refund-1",
    )

    assert response.status_code == 201
    event = only_event()
    assert (event.event_type, event.outcome) == ("payment_refunded", Outcome.SUCCESS)
    assert (event.object_type, event.object_id) == (PAYMENT_TYPE, str(payment.pk))
    assert event.path == f"{PAYMENTS}{payment.pk}/refund/"


def test_the_admin_links_a_payment_event_to_the_payment(send, client, django_user_model):
    created = send("post", PAYMENTS, WRITER, NEW_PAYMENT, HTTP_IDEMPOTENCY_KEY="order-1002")
    event = only_event()
    client.force_login(django_user_model.objects.create_superuser("root", "r@example.com", "pw"))
    payment_page = f"/admin/payments/payment/{created.json()['id']}/change/"

    listing = client.get(AUDIT_LOG).content.decode()
    detail = client.get(f"{AUDIT_LOG}{event.pk}/change/").content.decode()

    assert f'href="{payment_page}"' in listing
    assert f'href="{payment_page}"' in detail and "Payment created" in detail
    assert "Order 1001" in client.get(payment_page).content.decode()


def test_refused_refund_records_no_success_event(send):
    payment = PaymentFactory()

    too_much = send(
        "post",
        f"{PAYMENTS}{payment.pk}/refund/",
        REFUNDER,
        {"amount": "99"},
        HTTP_IDEMPOTENCY_KEY="refund-too-much",
    )

    # Refused for its amount, not for a missing Idempotency-Key.
    assert too_much.status_code == 409, too_much.content
    assert not AuditEvent.objects.filter(outcome=Outcome.SUCCESS).exists()


def test_missing_audit_table_leaves_a_payment_creation_intact(send, audit_table_missing, caplog):
    response = send("post", PAYMENTS, WRITER, NEW_PAYMENT, HTTP_IDEMPOTENCY_KEY="k-1")
    replay = send("post", PAYMENTS, WRITER, NEW_PAYMENT, HTTP_IDEMPOTENCY_KEY="k-1")

    assert response.status_code == 201, response.content
    # The failed INSERT rolled back only its savepoint: the payment and its key committed.
    assert replay.status_code == 201 and replay.json() == response.json()
    with all_tenants_context():
        assert Payment.all_tenants.filter(pk=response.json()["id"]).exists()
    failures = [r for r in caplog.records if r.name == "entra_auth.audit"]
    assert failures and "payment_created" in failures[0].getMessage()
    assert all(JWT_PREFIX not in JsonFormatter().format(r) for r in failures)
