"""Fixtures of the sample service's tests: a multi-tenant API serving TENANT_A and TENANT_B.

The shared ones (the fake Entra server, ``configure``, ``api_client``) are in
``tests/conftest.py``; Payment and Refund factories and the sample's callers are in
``tests.sample.factories``, the API's paths and who each endpoint refuses in
``tests.sample.paths``.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.db import connections
from rest_framework.test import APIClient

from entra_auth.tenancy import all_tenants_context
from payments.models import IdempotencyRecord, Payment, Refund
from tests.factories import Caller
from tests.fake_entra import TENANT_A, TENANT_B, FakeEntra
from tests.sample.factories import PaymentFactory


@pytest.fixture(autouse=True)
def two_tenants(configure: Callable[..., None]) -> None:
    """The sample as a multi-tenant API that accepts callers from both test tenants."""
    configure(TENANT_ID="organizations", ALLOWED_TENANTS=[TENANT_A, TENANT_B])


@pytest.fixture
def trusted_dev_issuer(configure: Callable[..., None], tmp_path: Path) -> None:
    """The two tenants, and development tokens trusted (by the explicit override: DEBUG is off
    in tests) with a key file of the test's own."""
    configure(
        TENANT_ID="organizations",
        ALLOWED_TENANTS=[TENANT_A, TENANT_B],
        DEV_ISSUER=True,
        DEV_ISSUER_WITHOUT_DEBUG=True,
        DEV_ISSUER_KEY_FILE=str(tmp_path / "dev-key.pem"),
    )


@pytest.fixture
def payment(db: None) -> Payment:
    """A captured 100.00 EUR payment of tenant A."""
    return PaymentFactory(amount=Decimal("100.00"), description="Office chairs")


@pytest.fixture
def call(api_client: APIClient, fake_entra: FakeEntra) -> Callable[..., Any]:
    """``call(caller, "post", path, json_body, **headers)``: one JSON request as ``caller``.

    ``caller=None`` sends no token. Extra headers are given by name (``Idempotency_Key=...``).
    A POST gets a fresh ``Idempotency-Key`` unless one is given; ``Idempotency_Key=None``
    sends none.
    """

    def request(
        caller: Caller | None,
        method: str,
        path: str,
        body: Any = None,
        **headers: str | None,
    ) -> Any:
        extra = caller.headers(fake_entra) if caller is not None else {}
        if method == "post":
            headers.setdefault("Idempotency_Key", uuid.uuid4().hex)
        for name, value in headers.items():
            if value is not None:
                extra[f"HTTP_{name.upper()}"] = value
        send = getattr(api_client, method)
        if body is None or method == "get":
            return send(path, body, **extra)
        return send(path, body, format="json", **extra)

    return request


@pytest.fixture
def error_body() -> Callable[[Any, int], dict[str, Any]]:
    """``error_body(response, status)``: check the JSON error shape, return it without the id.

    Every error is ``{"detail": ..., "request_id": ...}`` with field errors beside
    ``detail``; the id is the response's ``X-Request-ID``.
    """

    def check(response: Any, status: int) -> dict[str, Any]:
        assert response.status_code == status, response.content
        assert response["Content-Type"] == "application/json"
        body = response.json()
        assert isinstance(body.get("detail"), str) and body["detail"]
        assert body.pop("request_id") == response["X-Request-ID"]
        return body

    return check


@pytest.fixture
def row_counts(db: None) -> Callable[[], dict[str, int]]:
    """Rows of every tenant (unscoped on purpose): compare before and after a refused request."""

    def count() -> dict[str, int]:
        with all_tenants_context():
            return {
                "payments": Payment.all_tenants.count(),
                "refunds": Refund.all_tenants.count(),
                "idempotency_keys": IdempotencyRecord.all_tenants.count(),
            }

    return count


THREAD_TIMEOUT_S = 30


@pytest.fixture
def post_concurrently(fake_entra: FakeEntra) -> Callable[..., list[Any]]:
    """``post_concurrently([(path, body, headers), ...])``: one thread per request, released
    together by a barrier; returns the responses in order. A request without an
    ``Idempotency-Key`` in its headers gets a fresh one.

    Needs ``django_db(transaction=True)``: each thread has its own database connection, closed
    when it ends. A warm-up request first puts the signing keys in the cache.
    """

    def post_all(requests: list[tuple[str, Any, dict[str, str]]]) -> list[Any]:
        assert APIClient().get("/api/me/", **requests[0][2]).status_code == 200
        barrier = threading.Barrier(len(requests), timeout=THREAD_TIMEOUT_S)
        responses: list[Any] = [None] * len(requests)

        def post(index: int, path: str, body: Any, headers: dict[str, str]) -> None:
            client = APIClient()
            # A write needs its key; requests given one (replays of one request) keep it.
            headers = {"HTTP_IDEMPOTENCY_KEY": uuid.uuid4().hex, **headers}
            try:
                barrier.wait()
                responses[index] = client.post(path, body, format="json", **headers)
            finally:
                connections.close_all()

        threads = [
            threading.Thread(target=post, args=(index, *request))
            for index, request in enumerate(requests)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(THREAD_TIMEOUT_S)
        assert not any(thread.is_alive() for thread in threads), "a request did not finish"
        assert None not in responses, "a request thread failed"
        return responses

    return post_all
