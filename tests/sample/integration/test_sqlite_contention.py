"""The embedded default under contention: concurrent refunds and payments on SQLite, served
by gunicorn as ``make serve`` does, answer 201 or 409, never a 500 ("database is locked"), and
refunds never exceed the captured amount."""

from __future__ import annotations

import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
import requests

from entra_auth.dev_issuer import mint_token
from tests.sample.integration.servers import gunicorn, migrate, sample_environment

TENANT = "11111111-1111-4111-8111-111111111111"
REFUNDS = 24
PAYMENTS = 24
CLIENTS = 12
REQUEST_TIMEOUT_S = 30

pytestmark = pytest.mark.skipif(
    os.environ.get("DATABASE_URL", "").startswith("postgres"),
    reason="this is the SQLite default; PostgreSQL contention is tested in test_api",
)


@pytest.fixture
def server(tmp_path, settings):
    key_file = tmp_path / "dev-key.pem"
    settings.DEBUG = True
    settings.ENTRA_AUTH = {"DEV_ISSUER": True, "DEV_ISSUER_KEY_FILE": str(key_file)}
    token = mint_token(
        tenant_id=TENANT, scopes=["Payments.Read", "Payments.Write"], roles=["Payments.Admin"]
    )
    environment = sample_environment(tmp_path, API_RATE_LIMIT="100000/m", REDIS_URL=None)
    migrate(environment)
    with gunicorn(environment, workers=2, threads=6) as (base_url, _process):
        yield base_url, {"Authorization": f"Bearer {token}"}


def _post(url: str, headers: dict[str, str], body: dict[str, str]) -> requests.Response:
    return requests.post(
        url,
        json=body,
        headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
        timeout=REQUEST_TIMEOUT_S,
    )


def test_concurrent_refunds_and_payments_on_sqlite_are_201_or_409_never_500(server):
    base_url, headers = server
    created = _post(f"{base_url}/api/payments/", headers, {"amount": "100.00", "currency": "EUR"})
    assert created.status_code == 201, created.text
    refund_url = f"{base_url}/api/payments/{created.json()['id']}/refund/"
    payments_url = f"{base_url}/api/payments/"

    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        refunds = [
            pool.submit(_post, refund_url, headers, {"amount": "10.00"}) for _ in range(REFUNDS)
        ]
        payments = [
            pool.submit(_post, payments_url, headers, {"amount": "1.00", "currency": "EUR"})
            for _ in range(PAYMENTS)
        ]
        refund_statuses = sorted(future.result().status_code for future in refunds)
        payment_statuses = [future.result().status_code for future in payments]

    assert refund_statuses == [201] * 10 + [409] * (REFUNDS - 10)
    assert payment_statuses == [201] * PAYMENTS
    payment = requests.get(
        f"{base_url}/api/payments/{created.json()['id']}/", headers=headers, timeout=10
    ).json()
    assert Decimal(payment["refunded_amount"]) == Decimal("100.00")
    assert payment["status"] == "refunded"
