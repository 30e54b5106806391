"""Request bodies: ``RequestBodyLimitMiddleware`` caps them before anything buffers them, and
``BoundedJSONParser`` bounds how deeply JSON may nest. Hostile bodies are 4xx, never 500.

The library's test URLs: ``/api/echo/`` parses ``request.data`` and answers its keys,
``/api/me/`` needs a token. A body is sent either with ``Content-Length`` or without one, as
gunicorn passes a chunked body on: no ``CONTENT_LENGTH``, ``wsgi.input`` ending where the body
ends, and ``wsgi.input_terminated`` saying so.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from entra_auth.http.body_limit import parse_content_length, read_at_most
from entra_auth.http.parsers import MAX_JSON_DEPTH, json_depth_exceeds

pytestmark = pytest.mark.django_db

ECHO = "/api/echo/"
ME = "/api/me/"
LIMIT = 1024
TOO_LARGE = "The request body is too large."
BAD_LENGTH = "The Content-Length header must be a whole number of bytes."
NESTED_TOO_DEEPLY = "The request body is nested too deeply."
INTERNALS = ("Traceback", "RecursionError", "ValueError", "secret", "<html")


class Input:
    """A ``wsgi.input`` that counts what is read from it; ``endless`` never runs dry."""

    def __init__(self, data: bytes = b"", *, endless: bool = False) -> None:
        self.data = data
        self.endless = endless
        self.consumed = 0

    def read(self, size: int = -1, /) -> bytes:
        if self.endless:
            assert size is not None and size >= 0, "an unbounded read of an endless body"
            chunk = b"[" * size
        else:
            end = len(self.data) if size is None or size < 0 else self.consumed + size
            chunk = self.data[self.consumed : end]
        self.consumed += len(chunk)
        return chunk

    def readline(self, size: int = -1, /) -> bytes:
        return self.read(size)


@pytest.fixture
def client() -> Client:
    return Client(raise_request_exception=False)


@pytest.fixture
def small_limit(settings: Any) -> int:
    settings.ENTRA_AUTH = {**settings.ENTRA_AUTH, "MAX_REQUEST_BODY_BYTES": LIMIT}
    return LIMIT


def json_of_size(size: int) -> bytes:
    """``{"a": "xxx…"}`` of exactly ``size`` bytes."""
    body = b'{"a": ""}'
    return body[:-2] + b"x" * (size - len(body)) + body[-2:]


def send_sized(client: Client, path: str, stream: Input, length: str, method: str = "POST"):
    """A request declaring ``Content-Length: length`` whatever ``stream`` holds."""
    return client.generic(
        method,
        path,
        CONTENT_LENGTH=length,
        CONTENT_TYPE="application/json",
        **{"wsgi.input": stream},
    )


def send_unsized(client: Client, path: str, stream: Input, *, terminated: bool = True):
    """A chunked request without ``Content-Length``, as a WSGI server passes it on."""
    extra: dict[str, Any] = {
        "CONTENT_TYPE": "application/json",
        "HTTP_TRANSFER_ENCODING": "chunked",
        "wsgi.input": stream,
    }
    if terminated:
        extra["wsgi.input_terminated"] = True
    return client.generic("POST", path, b"", **extra)


def assert_json_error(response: Any, status: int, detail: str) -> None:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body == {"detail": detail, "request_id": response["X-Request-ID"]}
    for leak in INTERNALS:
        assert leak not in response.content.decode()


def nested(depth: int) -> bytes:
    """``{"a": [[…]]}``: one object holding arrays, ``depth`` levels in all."""
    return b'{"a": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


# --- Content-Length -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("POST", ECHO, id="a-view-reading-the-body"),
        pytest.param("PUT", ECHO, id="a-method-the-view-refuses"),
        pytest.param("GET", ME, id="a-view-needing-a-token"),
    ],
)
def test_a_declared_length_over_the_limit_is_a_413_before_anything_reads_the_body(
    client: Client, small_limit: int, method: str, path: str
) -> None:
    stream = Input(json_of_size(small_limit + 1))

    response = send_sized(client, path, stream, str(small_limit + 1), method)

    assert_json_error(response, 413, TOO_LARGE)
    assert stream.consumed == 0


@pytest.mark.parametrize(
    "length",
    [
        pytest.param(str(64 * 1024 + 1), id="one-byte-over-the-default"),
        pytest.param(str(2_621_440 + 1), id="over-djangos-upload-limit"),
        pytest.param("9" * 5000, id="more-digits-than-int-converts"),
        pytest.param("0" * 5000 + "99999999", id="many-leading-zeros"),
    ],
)
def test_a_declared_length_over_the_default_limit_is_a_413(client: Client, length: str) -> None:
    stream = Input(b"{}")

    response = send_sized(client, ECHO, stream, length)

    assert_json_error(response, 413, TOO_LARGE)
    assert stream.consumed == 0


@pytest.mark.parametrize(
    "length",
    ["abc", "-1", "+5", "1.5", " 12", "12 ", "0x10", "1e3", "12, 12", "\u0661\u0662", "\u00b2"],
)
def test_a_content_length_that_is_not_a_whole_number_is_a_400(client: Client, length: str) -> None:
    stream = Input(b'{"a": 1}')

    response = send_sized(client, ECHO, stream, length)

    assert_json_error(response, 400, BAD_LENGTH)
    assert stream.consumed == 0


def test_a_body_of_exactly_the_limit_reaches_the_view(client: Client, small_limit: int) -> None:
    body = json_of_size(small_limit)

    response = send_sized(client, ECHO, Input(body), str(len(body)))

    assert response.status_code == 200, response.content
    assert response.json() == {"keys": ["a"]}


def test_a_body_one_byte_over_the_limit_is_a_413(client: Client, small_limit: int) -> None:
    body = json_of_size(small_limit + 1)

    assert_json_error(send_sized(client, ECHO, Input(body), str(len(body))), 413, TOO_LARGE)


def test_an_empty_content_length_means_none_was_given(client: Client) -> None:
    """PEP 3333: CONTENT_LENGTH may be empty; Django then reads no body."""
    stream = Input(b'{"a": 1}')

    response = send_sized(client, ECHO, stream, "")

    assert response.status_code == 200, response.content
    assert response.json() == {"keys": []}
    assert stream.consumed == 0


# --- bodies without Content-Length ----------------------------------------------------------


def test_an_unsized_body_over_the_limit_is_a_413_after_reading_one_byte_past_it(
    client: Client, small_limit: int
) -> None:
    stream = Input(endless=True)

    response = send_unsized(client, ECHO, stream)

    assert_json_error(response, 413, TOO_LARGE)
    assert stream.consumed == small_limit + 1


def test_an_unsized_body_over_the_limit_is_refused_before_authentication(
    client: Client, small_limit: int
) -> None:
    response = send_unsized(client, ME, Input(endless=True))

    assert_json_error(response, 413, TOO_LARGE)
    assert "WWW-Authenticate" not in response


def test_an_unsized_body_within_the_limit_is_the_requests_body(
    client: Client, small_limit: int
) -> None:
    body = json_of_size(small_limit)
    stream = Input(body)

    response = send_unsized(client, ECHO, stream)

    assert response.status_code == 200, response.content
    assert response.json() == {"keys": ["a"]}
    assert stream.consumed == len(body)


def test_an_empty_unsized_body_is_no_body(client: Client) -> None:
    response = send_unsized(client, ECHO, Input(b""))

    assert response.status_code == 200, response.content
    assert response.json() == {"keys": []}


def test_an_unsized_body_is_left_unread_when_the_server_does_not_end_the_input(
    client: Client, small_limit: int
) -> None:
    """Without wsgi.input_terminated, reading could wait on the connection: as Django does,
    the body is not read, and the view sees none."""
    stream = Input(endless=True)

    response = send_unsized(client, ECHO, stream, terminated=False)

    assert response.status_code == 200, response.content
    assert response.json() == {"keys": []}
    assert stream.consumed == 0


def test_paths_outside_the_api_keep_djangos_own_handling(client: Client, small_limit: int) -> None:
    stream = Input(b"{}")

    response = send_sized(client, "/pages/no-such-page/", stream, str(10 * small_limit))

    assert response.status_code == 404
    assert stream.consumed == 0


def test_a_refusal_carries_the_request_id_and_the_security_headers(
    client: Client, small_limit: int
) -> None:
    response = send_sized(client, ECHO, Input(b""), str(small_limit + 1))

    assert response.json()["request_id"] == response["X-Request-ID"]
    assert response["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert response["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    ("value", "length"),
    [("0", 0), ("000", 0), ("65536", 65536), ("0012", 12), ("9" * 19, 2**63 - 1)],
)
def test_parse_content_length_reads_plain_digits(value: str, length: int) -> None:
    assert parse_content_length(value) == length


@pytest.mark.parametrize("value", ["", "-0", "1_000", "\u0661", "1 ", "ten"])
def test_parse_content_length_refuses_anything_else(value: str) -> None:
    with pytest.raises(ValueError):
        parse_content_length(value)


def test_read_at_most_never_reads_past_its_size() -> None:
    stream = Input(endless=True)

    assert read_at_most(stream, 200_000) == b"[" * 200_000
    assert stream.consumed == 200_000


# --- JSON nesting ---------------------------------------------------------------------------


def test_json_nested_as_deep_as_the_bound_is_parsed(client: Client) -> None:
    response = client.post(ECHO, nested(MAX_JSON_DEPTH), content_type="application/json")

    assert response.status_code == 200, response.content
    assert response.json() == {"keys": ["a"]}


def test_json_nested_one_level_deeper_than_the_bound_is_a_400(client: Client) -> None:
    response = client.post(ECHO, nested(MAX_JSON_DEPTH + 1), content_type="application/json")

    assert_json_error(response, 400, NESTED_TOO_DEEPLY)


@pytest.mark.parametrize(
    ("body", "limit"),
    [
        pytest.param(b"[" * 30_000 + b"]" * 30_000, None, id="30000-arrays-within-64-KiB"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, 1_000_000, id="100000-arrays"),
        pytest.param(b'{"a":' * 10_000 + b"1" + b"}" * 10_000, None, id="10000-objects"),
        pytest.param(b"[" * 50_000, None, id="never-closed"),
    ],
)
def test_deeply_nested_json_is_a_400_not_a_recursion_error(
    client: Client, settings: Any, body: bytes, limit: int | None
) -> None:
    if limit is not None:
        settings.ENTRA_AUTH = {**settings.ENTRA_AUTH, "MAX_REQUEST_BODY_BYTES": limit}

    response = client.post(ECHO, body, content_type="application/json")

    assert_json_error(response, 400, NESTED_TOO_DEEPLY)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param({"a": "[" * 1000 + "{" * 1000}, id="brackets-in-a-string"),
        pytest.param({"a": '\\"[[[[' * 200}, id="escaped-quotes-and-brackets"),
        pytest.param({"[" * 100: "]" * 100}, id="brackets-in-a-key"),
    ],
)
def test_brackets_inside_strings_do_not_count(client: Client, value: dict[str, str]) -> None:
    response = client.post(ECHO, json.dumps(value), content_type="application/json")

    assert response.status_code == 200, response.content
    assert response.json() == {"keys": sorted(value)}


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"1" * 5000, id="an-integer-of-5000-digits"),
        pytest.param(b'{"a": NaN}', id="NaN"),
        pytest.param(b'{"a": 1e999999}', id="an-overflowing-float"),
        pytest.param(b'{"a": "\xff"}', id="not-utf-8"),
        pytest.param(b'"unterminated', id="an-unterminated-string"),
    ],
)
def test_other_hostile_json_is_a_400(client: Client, body: bytes) -> None:
    response = client.post(ECHO, body, content_type="application/json")

    assert response.status_code == 400, response.content
    assert response.json()["request_id"] == response["X-Request-ID"]


def depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth(item) for item in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(item) for item in value.values()), default=0)
    return 0


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=JSON_VALUES, limit=st.integers(min_value=0, max_value=8), ascii=st.booleans())
def test_the_depth_scan_agrees_with_the_parsed_value(value: Any, limit: int, ascii: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii)

    assert json_depth_exceeds(text, limit) == (depth(value) > limit)
