"""The sample routes GET /metrics: a 404 until METRICS_TOKEN is set, then only for its token."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fake_entra import TENANT_A, TENANT_B
from tests.sample.factories import READER

pytestmark = pytest.mark.django_db

METRICS_TOKEN = "sample-metrics-0f3b2c1d4e5a69788796a5b4c3d2e1f0"
LIST_ROUTE = "api/payments/$"


def listed(api_client) -> float:
    """Answered payment lists so far, as /metrics tells."""
    response = api_client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}")
    assert response.status_code == 200
    return sum(
        sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
        if sample.name == "entra_auth_http_requests_total"
        and sample.labels == {"route": LIST_ROUTE, "method": "GET", "status": "200"}
    )


def test_metrics_are_off_by_default(api_client):
    response = api_client.get("/metrics", HTTP_AUTHORIZATION="Bearer anything")

    assert response.status_code == 404
    assert b"entra_auth" not in response.content


def test_with_a_token_the_payments_api_is_counted_by_route(configure, call, api_client):
    configure(
        TENANT_ID="organizations", ALLOWED_TENANTS=[TENANT_A, TENANT_B], METRICS_TOKEN=METRICS_TOKEN
    )

    refused = api_client.get("/metrics")
    assert refused.status_code == 401
    assert b"entra_auth" not in refused.content
    before = listed(api_client)
    assert call(READER, "get", "/api/payments/").status_code == 200

    assert listed(api_client) - before == 1
