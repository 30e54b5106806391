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
