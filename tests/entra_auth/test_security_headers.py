"""Security headers on API, admin and error responses (docs/security.md)."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

STRICT_API_POLICY = "default-src 'none'; frame-ancestors 'none'"
COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def assert_common_headers(response) -> None:
    for name, value in COMMON_HEADERS.items():
        assert response[name] == value, name
    assert response["X-Request-ID"]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/me/", 401),
        ("/api/no-such-route/", 404),
        ("/health/live", 200),
    ],
)
def test_api_answers_carry_the_strict_policy_and_the_common_headers(path, status):
    response = Client(raise_request_exception=False).get(path)

    assert response.status_code == status
    assert response["Content-Security-Policy"] == STRICT_API_POLICY
    assert_common_headers(response)


def test_api_success_carries_the_strict_policy(fake_entra, api_client):
    response = api_client.get("/api/me/", HTTP_AUTHORIZATION=f"Bearer {fake_entra.token()}")

    assert response.status_code == 200
    assert response["Content-Security-Policy"] == STRICT_API_POLICY
    assert_common_headers(response)


def test_admin_gets_a_policy_that_lets_it_work_but_loads_nothing_foreign(client):
    response = client.get("/admin/login/")

    assert response.status_code == 200
    policy = response["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert_common_headers(response)


def test_errors_under_debug_still_carry_the_strict_api_policy(settings):
    settings.DEBUG = True

    response = Client(raise_request_exception=False).get("/api/no-such-route/")

    assert response.status_code == 404
    assert response["Content-Security-Policy"] == STRICT_API_POLICY


def test_hsts_is_sent_on_secure_requests_in_production():
    response = Client().get("/health/live", secure=True)

    assert response["Strict-Transport-Security"].startswith("max-age=31536000")


def test_cookies_are_secure_http_only_and_same_site_in_production(django_user_model):
    django_user_model.objects.create_superuser("ops", "ops@example.com", "a-long-test-password")
    client = Client(enforce_csrf_checks=False)

    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": "ops", "password": "a-long-test-password"},
        secure=True,
    )

    assert response.status_code == 302
    session = response.cookies["sessionid"]
    assert session["secure"] and session["httponly"]
    assert session["samesite"] == "Strict"


def test_without_django_csp_the_middleware_names_the_extra(monkeypatch: pytest.MonkeyPatch):
    import importlib
    import sys

    from django.core.exceptions import ImproperlyConfigured

    for name in ("csp.constants", "csp.middleware"):
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "entra_auth.http.csp", raising=False)
    with pytest.raises(
        ImproperlyConfigured,
        match=r"^entra_auth\.http\.csp needs django-csp: pip install 'drf-entra-auth\[csp\]'\.$",
    ):
        importlib.import_module("entra_auth.http.csp")
