"""The admin: operators read every tenant's payments and refunds, and change none of them."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import User
from django.test import Client

from entra_auth.tenancy import all_tenants_context
from payments.models import Payment, Refund
from tests.fake_entra import TENANT_A, TENANT_B
from tests.sample.factories import PaymentFactory, RefundFactory

pytestmark = pytest.mark.django_db

PAYMENTS = "/admin/payments/payment/"
REFUNDS = "/admin/payments/refund/"


@pytest.fixture
def operator(client: Client) -> Client:
    """A client signed in to the admin as a superuser."""
    user = User.objects.create_superuser("operator", "operator@example.com", "not-a-secret")
    client.force_login(user)
    return client


@pytest.fixture
def rows(db: None) -> SimpleNamespace:
    """In each tenant, a payment with a refund and a payment without."""
    made = {}
    for name, tenant in (("a", TENANT_A), ("b", TENANT_B)):
        refund = RefundFactory(
            tenant_id=tenant,
            payment__description=f"Chairs for {name}",
            payment__amount=Decimal("80.00"),
            amount=Decimal("15.00"),
        )
        plain = PaymentFactory(tenant_id=tenant, description=f"Coffee for {name}")
        made[name] = SimpleNamespace(refund=refund, refunded=refund.payment, plain=plain)
    return SimpleNamespace(**made)


def table(response) -> str:
    """The changelist's result table (so the search box and filters do not count)."""
    content = response.content.decode()
    start = content.find('id="result_list"')
    return content[start : content.find("</table>", start)] if start >= 0 else ""


def snapshot() -> list[tuple]:
    # Unscoped on purpose: every tenant's rows, before and after an operator acts.
    with all_tenants_context():
        return sorted(
            Payment.all_tenants.values_list(
                "id", "amount", "status", "refunded_amount", "description"
            )
        ) + sorted(Refund.all_tenants.values_list("id", "amount", "payment_id"))


# --- reading across tenants -----------------------------------------------------------------


def test_the_payment_list_shows_every_tenants_payments(
    operator: Client, rows: SimpleNamespace
) -> None:
    response = operator.get(PAYMENTS)

    assert response.status_code == 200
    shown = table(response)
    for tenant_rows in (rows.a, rows.b):
        assert str(tenant_rows.refunded.id) in shown
        assert str(tenant_rows.plain.id) in shown
    assert TENANT_A in shown and TENANT_B in shown
    assert "4 payments" in response.content.decode()


def test_the_refund_list_shows_every_tenants_refunds(
    operator: Client, rows: SimpleNamespace
) -> None:
    response = operator.get(REFUNDS)

    assert response.status_code == 200
    shown = table(response)
    assert str(rows.a.refund.id) in shown and str(rows.b.refund.id) in shown
    assert TENANT_A in shown and TENANT_B in shown


@pytest.mark.parametrize(
    ("path", "tenant", "expected", "hidden"),
    [
        pytest.param(
            PAYMENTS,
            TENANT_B,
            ("b.refunded", "b.plain"),
            ("a.refunded", "a.plain"),
            id="payments-b",
        ),
        pytest.param(
            PAYMENTS,
            TENANT_A,
            ("a.refunded", "a.plain"),
            ("b.refunded", "b.plain"),
            id="payments-a",
        ),
        pytest.param(
            PAYMENTS, TENANT_B.upper(), ("b.refunded", "b.plain"), ("a.plain",), id="upper-case"
        ),
        pytest.param(REFUNDS, TENANT_B, ("b.refund",), ("a.refund",), id="refunds-b"),
    ],
)
def test_operators_find_a_tenants_rows_by_its_tenant_id(
    operator: Client,
    rows: SimpleNamespace,
    path: str,
    tenant: str,
    expected: tuple[str, ...],
    hidden: tuple[str, ...],
) -> None:
    def row_id(dotted: str) -> str:
        tenant_rows, name = dotted.split(".")
        return str(getattr(getattr(rows, tenant_rows), name).id)

    response = operator.get(path, {"q": tenant})

    assert response.status_code == 200
    shown = table(response)
    assert all(row_id(name) in shown for name in expected)
    assert not any(row_id(name) in shown for name in hidden)


def test_operators_find_a_payment_by_id_and_description(
    operator: Client, rows: SimpleNamespace
) -> None:
    by_id = table(operator.get(PAYMENTS, {"q": str(rows.b.plain.id)}))
    by_description = table(operator.get(PAYMENTS, {"q": '"Chairs for a"'}))

    assert str(rows.b.plain.id) in by_id and str(rows.a.plain.id) not in by_id
    assert str(rows.a.refunded.id) in by_description
    assert str(rows.b.refunded.id) not in by_description


def test_a_payment_page_shows_the_payment_and_its_refunds_read_only(
    operator: Client, rows: SimpleNamespace
) -> None:
    response = operator.get(f"{PAYMENTS}{rows.b.refunded.id}/change/")

    content = response.content.decode()
    assert response.status_code == 200
    assert "Chairs for b" in content
    assert "Partially Refunded" in content
    assert rows.b.refund.created_by_oid in content  # the refund inline
    assert 'name="_save"' not in content and 'name="_continue"' not in content
    for field in ("amount", "currency", "description", "status", "refunded_amount"):
        assert f'name="{field}"' not in content, f"{field} is editable"


# --- changing nothing -----------------------------------------------------------------------


@pytest.mark.parametrize("path", [f"{PAYMENTS}add/", f"{REFUNDS}add/"])
def test_operators_cannot_add_payments_or_refunds(
    operator: Client, rows: SimpleNamespace, path: str
) -> None:
    before = snapshot()

    shown = operator.get(path)
    posted = operator.post(path, {"amount": "5.00", "currency": "EUR", "description": "forged"})

    assert (shown.status_code, posted.status_code) == (403, 403)
    assert snapshot() == before


@pytest.mark.parametrize("model", ["payment", "refund"])
def test_operators_cannot_change_payments_or_refunds(
    operator: Client, rows: SimpleNamespace, model: str
) -> None:
    row = rows.a.refunded if model == "payment" else rows.a.refund
    path = f"/admin/payments/{model}/{row.id}/change/"
    before = snapshot()

    response = operator.post(
        path,
        {
            "amount": "1.00",
            "currency": "EUR",
            "description": "changed",
            "status": "refunded",
            "refunded_amount": "0.00",
            "_save": "Save",
        },
    )

    assert response.status_code == 403
    assert snapshot() == before


@pytest.mark.parametrize("model", ["payment", "refund"])
def test_operators_cannot_delete_payments_or_refunds(
    operator: Client, rows: SimpleNamespace, model: str
) -> None:
    row = rows.b.plain if model == "payment" else rows.b.refund
    path = f"/admin/payments/{model}/{row.id}/delete/"
    before = snapshot()

    shown = operator.get(path)
    posted = operator.post(path, {"post": "yes"})

    assert (shown.status_code, posted.status_code) == (403, 403)
    assert snapshot() == before


@pytest.mark.parametrize("path", [PAYMENTS, REFUNDS])
def test_the_list_offers_no_bulk_delete_and_refuses_one(
    operator: Client, rows: SimpleNamespace, path: str
) -> None:
    selected = [str(rows.a.plain.id)] if path == PAYMENTS else [str(rows.a.refund.id)]
    before = snapshot()

    page = operator.get(path)
    operator.post(path, {"action": "delete_selected", "_selected_action": selected, "post": "yes"})

    assert "delete_selected" not in page.content.decode()
    assert snapshot() == before


# --- who gets in ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", [PAYMENTS, REFUNDS])
def test_anonymous_visitors_are_sent_to_the_admin_login(
    client: Client, rows: SimpleNamespace, path: str
) -> None:
    response = client.get(path)

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.parametrize("path", [PAYMENTS, REFUNDS])
def test_staff_without_permissions_cannot_see_payments(
    client: Client, rows: SimpleNamespace, path: str
) -> None:
    client.force_login(User.objects.create_user("clerk", password="not-a-secret", is_staff=True))

    assert client.get(path).status_code == 403
