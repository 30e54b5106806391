"""Liveness and readiness: 503 naming the failing dependency, nothing internal."""

from __future__ import annotations

import threading

import pytest
from django.db import OperationalError

from entra_auth.http import health

pytestmark = pytest.mark.django_db


def test_live_answers_while_the_process_runs(client):
    response = client.get("/health/live")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_when_database_cache_and_keys_are_usable(fake_entra, client):
    response = client.get("/health/ready")

    assert response.status_code == 200, response.content
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "cache": "ok", "signing_keys": "ok"},
    }


def assert_unavailable(response, failing: str) -> None:
    assert response.status_code == 503
    assert response["Retry-After"]
    body = response.json()
    assert body["checks"][failing] in ("failing", "timeout")
    assert [name for name, result in body["checks"].items() if result != "ok"] == [failing]
    assert failing in body["detail"]
    assert body["request_id"] == response["X-Request-ID"]
    for leak in ("Traceback", "Error", "redis://", "127.0.0.1"):
        assert leak not in response.content.decode()


def test_signing_keys_unavailable_makes_ready_fail_naming_them(fake_entra, client):
    fake_entra.state.down = True

    assert_unavailable(client.get("/health/ready"), "signing_keys")


def assert_degraded(response, failing: str) -> None:
    """Still ready (200): an optional dependency fails, named in the body."""
    assert response.status_code == 200
    assert "Retry-After" not in response
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"][failing] in ("failing", "timeout")
    assert [name for name, result in body["checks"].items() if result != "ok"] == [failing]
    assert failing in body["detail"]
    for leak in ("Traceback", "Error", "redis://", "127.0.0.1"):
        assert leak not in response.content.decode()


def test_cache_down_leaves_the_instance_ready_and_says_degraded(fake_entra, client, cache_outage):
    # Keys are loaded first, so only the cache is missing afterwards: the API still serves
    # (keys in memory, rate limits per their outage policy), so a load balancer keeps it.
    assert client.get("/health/ready").status_code == 200
    with cache_outage():
        response = client.get("/health/ready")

    assert_degraded(response, "cache")


def test_database_down_makes_ready_fail_naming_the_database(fake_entra, client, monkeypatch):
    # An outage of the database server cannot be staged under the test database: the driver
    # error it would raise is.
    def database_down() -> None:
        raise OperationalError("connection refused")

    monkeypatch.setitem(health.READINESS_CHECKS, "database", database_down)

    assert_unavailable(client.get("/health/ready"), "database")


def test_a_hung_check_is_reported_as_a_timeout_without_holding_the_answer(
    fake_entra, client, monkeypatch
):
    released = threading.Event()
    started: list[int] = []

    def hung_cache_check() -> None:
        started.append(1)
        released.wait(5)

    monkeypatch.setattr(health, "CHECK_TIMEOUT_S", 0.05)
    monkeypatch.setitem(health.READINESS_CHECKS, "cache", hung_cache_check)
    # The other checks answer at once: with so short a budget a real database round trip on
    # a busy machine could time out too, and this test is about the hung one.
    monkeypatch.setitem(health.READINESS_CHECKS, "database", lambda: None)
    monkeypatch.setitem(health.READINESS_CHECKS, "signing_keys", lambda: None)
    try:
        first = client.get("/health/ready")
        second = client.get("/health/ready")
    finally:
        released.set()
        health._in_flight["cache"].result(timeout=5)

    assert_degraded(first, "cache")
    assert first.json()["checks"]["cache"] == "timeout"
    # The second probe found the first check still hung and did not start another.
    assert_degraded(second, "cache")
    assert started == [1]
