"""Structured request logs: one JSON line per request, tied to the request id, never a token."""

from __future__ import annotations

import io
import json
import logging
import sys
from typing import Any

import pytest
from django.http import HttpResponse
from django.test import RequestFactory

from entra_auth.http.request_log import REQUEST_LOGGER_NAME
from entra_auth.logging import JsonFormatter, redact_tokens
from entra_auth.middleware import RequestContextMiddleware
from tests.fake_entra import CLIENT_APP_ID, TENANT_A, FakeEntra

pytestmark = pytest.mark.django_db

ME = "/api/me/"
CLIENT_ADDRESS = "198.51.100.40"
LINE_FIELDS = {
    "time",
    "level",
    "logger",
    "message",
    "request_id",
    "method",
    "path",
    "status",
    "duration_ms",
    "client_ip",
    "tenant_id",
    "oid",
    "app_id",
}


def request_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    formatter = JsonFormatter()
    return [
        json.loads(formatter.format(record))
        for record in caplog.records
        if record.name == REQUEST_LOGGER_NAME
    ]


@pytest.fixture
def request_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER_NAME)
    return caplog


def test_authenticated_request_is_one_line_with_the_caller(fake_entra, api_client, request_log):
    token = fake_entra.token()

    response = api_client.get(
        f"{ME}?debug=1", HTTP_AUTHORIZATION=f"Bearer {token}", REMOTE_ADDR=CLIENT_ADDRESS
    )

    assert response.status_code == 200
    [line] = request_lines(request_log)
    assert set(line) == LINE_FIELDS
    assert line["level"] == "INFO" and line["logger"] == REQUEST_LOGGER_NAME
    assert line["request_id"] == response["X-Request-ID"]
    assert (line["method"], line["path"], line["status"]) == ("GET", ME, 200)
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["client_ip"] == CLIENT_ADDRESS
    claims = fake_entra.claims()
    assert (line["tenant_id"], line["oid"], line["app_id"]) == (
        TENANT_A,
        claims["oid"],
        CLIENT_APP_ID,
    )
    assert line["message"].startswith("GET /api/me/ 200 ")


def test_refused_request_is_logged_without_its_token_or_a_caller(
    fake_entra: FakeEntra, api_client, request_log
):
    token = fake_entra.token(audience="api://someone-else")

    response = api_client.get(ME, HTTP_AUTHORIZATION=f"Bearer {token}")

    [line] = request_lines(request_log)
    assert line["status"] == response.status_code == 401
    assert (line["tenant_id"], line["oid"], line["app_id"]) == (None, None, None)
    text = JsonFormatter().format(request_log.records[-1])
    assert token not in text and "eyJ" not in text and "Bearer" not in text


def test_every_request_gets_a_line_also_outside_the_api(api_client, request_log):
    response = api_client.get("/health/live")

    [line] = request_lines(request_log)
    assert (line["path"], line["status"]) == ("/health/live", response.status_code)
    assert line["request_id"] == response["X-Request-ID"]


def test_server_error_is_logged_at_error_level(api_client, request_log):
    api_client.raise_request_exception = False

    response = api_client.get("/api/fails/django/")

    [line] = request_lines(request_log)
    assert (line["status"], line["level"]) == (response.status_code, "ERROR") == (500, "ERROR")


@pytest.mark.parametrize(("trusted", "expected"), [(True, "proxy-id-42"), (False, None)])
def test_request_id_from_a_trusted_proxy_is_used_in_the_log(
    fake_entra, configure, api_client, request_log, trusted, expected
):
    configure(TRUST_REQUEST_ID_HEADER=trusted)

    response = api_client.get("/health/live", HTTP_X_REQUEST_ID="proxy-id-42")

    [line] = request_lines(request_log)
    assert line["request_id"] == response["X-Request-ID"]
    assert (line["request_id"] == "proxy-id-42") is trusted
    if expected is None:
        assert len(line["request_id"]) == 32  # a fresh uuid4 hex


def test_any_log_line_inside_a_request_carries_its_request_id():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.inside_a_request")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)

    def view(request):
        logger.info("working on it", extra={"step": 2, "request": request})
        return HttpResponse("ok")

    try:
        response = RequestContextMiddleware(view)(RequestFactory().get("/"))
    finally:
        logger.removeHandler(handler)

    line = json.loads(stream.getvalue())
    assert line["request_id"] == response["X-Request-ID"]
    assert line["step"] == 2
    assert "request" not in line  # not a JSON scalar: left out, never str()-ed


def test_formatter_includes_the_exception_and_redacts_tokens():
    try:
        raise ValueError("Authorization: Bearer abc.def-ghi and eyJhbGciOi.eyJzdWIi.c2ln")
    except ValueError:
        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "failed with %s", ("eyJxx.yy.zz",), sys.exc_info()
        )

    line = json.loads(JsonFormatter().format(record))

    assert line["message"] == "failed with [redacted]"
    assert "ValueError" in line["exc_info"]
    assert "eyJ" not in json.dumps(line) and "abc.def-ghi" not in json.dumps(line)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("GET /api/widgets/eyJhbGci.eyJ.sig/", "GET /api/widgets/[redacted]/"),
        ("authorization: bearer opaque-Token_1=", "authorization: [redacted]"),
        ("no secrets here", "no secrets here"),
    ],
)
def test_redact_tokens(text, expected):
    assert redact_tokens(text) == expected
