"""Errors on API routes are JSON with a request id and nothing internal, whatever DEBUG says."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

INTERNALS = ("Traceback", "RuntimeError", "KeyError", "secret internals", "urlpatterns", "<html")


@pytest.fixture(params=[False, True], ids=["debug-off", "debug-on"])
def debug(request, settings):
    settings.DEBUG = request.param
    return request.param


@pytest.fixture
def client():
    return Client(raise_request_exception=False)


def assert_json_error(response, status):
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["detail"]
    assert body["request_id"] == response["X-Request-ID"]
    text = response.content.decode()
    for leak in INTERNALS:
        assert leak not in text


@pytest.mark.parametrize("path", ["/api/no-such-route/", "/api/widgets/x/y/z/"])
def test_unknown_api_route_is_a_json_404(debug, client, path):
    assert_json_error(client.get(path), 404)


def test_exception_in_a_plain_django_view_under_api_is_a_json_500(debug, client):
    assert_json_error(client.get("/api/fails/django/"), 500)


def test_exception_in_a_drf_view_is_a_json_500(debug, client):
    response = client.get("/api/fails/drf/")

    assert_json_error(response, 500)
    assert response.json()["detail"] == "The server could not complete the request."


def test_wrong_method_keeps_its_allow_header(debug, client, fake_entra):
    token = fake_entra.token()

    response = client.delete("/api/me/", HTTP_AUTHORIZATION=f"Bearer {token}")

    assert_json_error(response, 405)
    assert "GET" in response["Allow"]


def test_routes_outside_the_api_keep_django_pages(client, settings):
    settings.DEBUG = False

    response = client.get("/no-such-page/")

    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")


# --- outages and requests Django itself refuses ----------------------------------------------


def assert_database_unavailable(response):
    assert_json_error(response, 503)
    assert int(response["Retry-After"]) > 0
    assert "db" not in response.json()["detail"]


@pytest.mark.parametrize("path", ["/api/fails/database/", "/pages/fails/database/"])
def test_a_database_outage_is_a_503_with_retry_after_in_any_view(debug, client, path):
    assert_database_unavailable(client.get(path))


def test_a_database_outage_is_a_503_with_drfs_own_exception_handler(client, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "EXCEPTION_HANDLER": None}
    settings.REST_FRAMEWORK.pop("EXCEPTION_HANDLER")

    assert_database_unavailable(client.get("/api/fails/database/"))


def test_an_outage_is_logged_once_per_interval_not_once_per_request(client, caplog, monkeypatch):
    from entra_auth import exceptions

    monkeypatch.setattr(exceptions, "database_outage_log", exceptions._OutageLog())
    with caplog.at_level("ERROR"):
        for _ in range(5):
            assert client.get("/api/fails/database/").status_code == 503

    outage_lines = [r for r in caplog.records if "database unavailable" in r.getMessage()]
    assert len(outage_lines) == 1
    assert not any(record.exc_info for record in caplog.records)


def test_a_request_django_finds_suspicious_is_a_json_400(debug, client):
    response = client.get("/api/fails/suspicious/")

    assert_json_error(response, 400)
    assert "Host" not in response.content.decode()


def test_a_body_over_djangos_upload_limit_is_a_json_413(client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    settings.ENTRA_AUTH = {**settings.ENTRA_AUTH, "MAX_REQUEST_BODY_BYTES": 1_000_000}

    response = client.post(
        "/api/raw-body/", data='{"a": "' + "x" * 2000 + '"}', content_type="application/json"
    )

    assert_json_error(response, 413)
