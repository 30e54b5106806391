"""No client input makes the sample answer 5xx: hostile requests get a clean 4xx.

Properties: every route and method of the sample with arbitrary headers (tokens valid and not,
content types, lying lengths, idempotency keys), query strings (the list's filters and
cursors) and bodies (JSON-ish text, bytes, deep nesting, huge numbers, Unicode); the list with
arbitrary values of each of its parameters; creating and refunding with bodies close to valid.
Every answer must be below 500, every error on an API path JSON with ``detail`` and the
response's request id, and a refused request must change nothing. Regression tests follow, one
per input that used to answer 500, then the two inputs Django fails on before any middleware
runs (expected failures until Django or a WSGI-level guard answers them).
"""

from __future__ import annotations

import base64
import codecs
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from django.test import Client, RequestFactory
from django.utils.http import parse_header_parameters
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from entra_auth.dev_issuer import mint_token
from payments.views import CURSOR_HELP, DATE_HELP, DATE_RANGE_HELP, PAGE_SIZE_HELP
from tests.fake_entra import TENANT_A, TENANT_B, FakeEntra
from tests.sample.factories import (
    APP_READER,
    APP_WRITER,
    READER,
    REFUNDER,
    UNRELATED_USER,
    WRITER,
    Caller,
    PaymentFactory,
)
from tests.sample.paths import LIST

pytestmark = pytest.mark.django_db

LIMIT = 64 * 1024
TOO_LARGE = "The request body is too large."
BAD_LENGTH = "The Content-Length header must be a whole number of bytes."
NESTED_TOO_DEEPLY = "The request body is nested too deeply."
INVALID = "The request is invalid."
INTERNALS = ("Traceback", "Error:", "Exception", "SELECT ", "sqlite", "psycopg", "<html")
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]
PAYMENT_ROUTES = ["/api/payments/{id}/", "/api/payments/{id}/refund/"]
# The API's own description too: the schema, Swagger UI and its OAuth 2.0 redirect.
OPENAPI_ROUTES = ["/api/schema/", "/api/docs/", "/api/docs/oauth2-redirect.html"]
ROUTES = ["/api/me/", LIST, *PAYMENT_ROUTES, *OPENAPI_ROUTES, "/health/live", "/health/ready"]
ROUTES += ["/api/no-such/"]
MISSING_ID = "00000000-0000-4000-8000-00000000dead"


def cursor(**tokens: str) -> str:
    """A cursor as DRF encodes one, holding whatever tokens it is given."""
    return base64.b64encode(urlencode(tokens).encode()).decode()


def nested(depth: int, opening: str = "[") -> str:
    if opening == "[":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


# --- what a hostile client sends ------------------------------------------------------------

# WSGI hands header values over as latin-1 text.
LATIN1 = st.text(alphabet=st.characters(min_codepoint=0x00, max_codepoint=0xFF), max_size=80)
EDGE_DATES = [
    "0001-01-01T00:00:00+14:00",
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00-14:00",
    "0001-01-01 00:00:00+00:00",
    "9999-12-31T23:59:59-14:00",
    "9999-12-31T23:59:59.999999Z",
    "9999-12-31T23:59:59+14:00",
    "99999-01-01T00:00:00Z",
    "+10000-01-01T00:00:00Z",
    "0000-01-01T00:00:00Z",
    "2026-02-30T00:00:00Z",
    "2026-01-01T24:00:00Z",
    "2026-01-01T00:00:60Z",
    "2026-01-01T00:00:00+24:00",
    "2026-01-01T00:00:00+23:59",
    "2026-01-01T00:00:00.99999999999Z",
    "2026-W01-1T00:00:00Z",
    "\u0662\u0660\u0662\u0666-01-01T00:00:00Z",
    "2026-01-01T00:00:00\x00Z",
]
OFFSETS = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: f"{'+' if minutes >= 0 else '-'}{abs(minutes) // 60:02}:{abs(minutes) % 60:02}"
)
DATES = st.one_of(
    st.sampled_from(EDGE_DATES),
    st.builds(lambda moment, offset: moment.isoformat() + offset, st.datetimes(), OFFSETS),
    st.builds(lambda moment, sep: moment.isoformat(sep=sep), st.datetimes(), st.sampled_from("T ")),
    LATIN1,
)
CURSORS = st.one_of(
    st.builds(
        lambda offset, reverse, position: cursor(o=offset, r=reverse, p=position),
        st.one_of(st.integers(min_value=-5, max_value=2000).map(str), LATIN1),
        st.sampled_from(["0", "1", "2", "-1", "x", ""]),
        DATES,
    ),
    st.builds(lambda position: cursor(p=position), DATES),
    st.binary(max_size=60).map(lambda raw: base64.b64encode(raw).decode()),
    LATIN1,
)
PARAMETER_VALUES = {
    "status": st.one_of(st.sampled_from(["captured", "refunded", "CAPTURED", ""]), LATIN1),
    "created_after": DATES,
    "created_before": DATES,
    "page_size": st.one_of(
        st.integers(min_value=-(10**30), max_value=10**30).map(str),
        st.sampled_from(["0", "0" * 50 + "1", "9" * 5000, "1e3", "\u0661", " 5"]),
        LATIN1,
    ),
    "cursor": CURSORS,
}
PARAMETER_PAIRS = st.sampled_from(sorted(PARAMETER_VALUES)).flatmap(
    lambda name: st.tuples(st.just(name), PARAMETER_VALUES[name])
)
QUERY_PAIRS = st.one_of(PARAMETER_PAIRS, st.tuples(LATIN1, LATIN1))
QUERIES = st.one_of(
    st.lists(QUERY_PAIRS, max_size=5).map(urlencode),
    st.sampled_from(["%", "%zz", "%ff%fe", "a=%00", "&&==&", "a=1&" * 1001]),
    st.text(max_size=60).map(lambda text: quote(text, safe="=&%")),
)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children)
    ),
    max_leaves=20,
)
AMOUNTS = st.one_of(
    st.sampled_from(["12.50", "0.01", "999999999999999", "1e3", "-1", "0", "\u0661\u0662", ""]),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
    JSON_VALUES,
)
PAYMENT_BODIES = st.fixed_dictionaries(
    {"amount": AMOUNTS, "currency": st.one_of(st.sampled_from(["EUR", "JPY", "eur"]), LATIN1)},
    optional={"description": st.text(max_size=40), "payment": st.text(max_size=5)},
).map(json.dumps)
SPECIAL_BODIES = [
    "",
    "null",
    "[]",
    "{}",
    "NaN",
    "-Infinity",
    '{"amount": 1e999, "currency": "EUR"}',
    '{"amount": "1.00", "currency": "EUR", "description": "\\u0000"}',
    '{"amount": "1.00", "currency": "EUR", "description": "\\ud800"}',
    '{"amount": "1.00", "currency": "EUR", "amount": "2.00"}',
    '"unterminated',
    "\ufeff{}",
    "x" * (LIMIT + 1),
]
BODIES = st.one_of(
    st.none(),
    PAYMENT_BODIES.map(str.encode),
    JSON_VALUES.map(lambda value: json.dumps(value, ensure_ascii=False).encode()),
    st.sampled_from(SPECIAL_BODIES).map(str.encode),
    st.text(max_size=200).map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.binary(max_size=200),
    st.builds(nested, st.integers(min_value=1, max_value=40_000), st.sampled_from("[{")).map(
        str.encode
    ),
    st.integers(min_value=1, max_value=70_000).map(
        lambda digits: ('{"amount": ' + "9" * digits + ', "currency": "EUR"}').encode()
    ),
)
# Most requests are well-formed but for one thing, so that they reach the views.
CONTENT_TYPES = st.one_of(
    st.just("application/json"),
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "application/json; charset=latin-1",
            "application/json; charset=bogus",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
            "multipart/form-data; boundary=x",
            "text/plain",
            "",
        ]
    ),
    LATIN1,
)
# How the body's length reaches Django: honestly, not at all (chunked), or as a lie.
LENGTHS = st.one_of(
    st.just("honest"),
    st.sampled_from(["honest", "chunked"]),
    st.sampled_from(["", "0", "1", "-1", "abc", "1.5", " 5", "9" * 30, "70000", "\u0661"]),
)
CALLERS = {
    "reader": READER,
    "writer": WRITER,
    "refunder": REFUNDER,
    "app-reader": APP_READER,
    "app-writer": APP_WRITER,
    "unrelated": UNRELATED_USER,
    "tenant-b-refunder": REFUNDER.in_tenant(TENANT_B),
}
AUTHORIZATIONS = st.one_of(
    st.none(),
    st.sampled_from(sorted(CALLERS)).map(lambda name: ("caller", name)),
    st.sampled_from(["writer", "refunder", "app-writer"]).map(lambda name: ("caller", name)),
    st.sampled_from(["dev", "tampered", "expired", "twice"]).map(lambda kind: (kind,)),
    LATIN1.map(lambda text: ("raw", text)),
    LATIN1.map(lambda text: ("raw", "Bearer " + text)),
)
IDEMPOTENCY_KEYS = st.one_of(st.sampled_from(["order-1", "order-2", "k" * 256, ""]), LATIN1)
HOSTS = st.sampled_from([None] * 20 + ["evil.example", "", "testserver:99999", "[::1", "a" * 300])
ACCEPTS = st.sampled_from([None] * 12 + ["text/html", "application/xml", "*/*;q=x", "\x00"])


@dataclass
class HostileRequest:
    method: str
    route: str
    payment: str
    query: str
    authorization: tuple[str, ...] | None
    body: bytes | None
    content_type: str
    length: str
    headers: dict[str, str] = field(default_factory=dict)


HOSTILE_REQUESTS = st.builds(
    HostileRequest,
    method=st.sampled_from(METHODS),
    route=st.one_of(
        st.sampled_from(ROUTES),
        st.sampled_from(ROUTES),
        st.text(max_size=30).map(lambda s: "/api/" + quote(s)),
    ),
    payment=st.one_of(
        st.just("own"),
        st.sampled_from(["own", "other-tenant", MISSING_ID, "not-a-uuid", "%00", "..", "x" * 500]),
        st.text(min_size=1, max_size=40).map(lambda s: quote(s, safe="")),
    ),
    query=QUERIES,
    authorization=AUTHORIZATIONS,
    body=BODIES,
    content_type=CONTENT_TYPES,
    length=LENGTHS,
    headers=st.fixed_dictionaries(
        {},
        optional={
            "HTTP_IDEMPOTENCY_KEY": IDEMPOTENCY_KEYS,
            "HTTP_X_REQUEST_ID": LATIN1,
            "HTTP_X_FORWARDED_FOR": LATIN1,
            "HTTP_ORIGIN": LATIN1,
        },
    ),
)


# --- sending it -----------------------------------------------------------------------------


def fails_before_any_middleware(request: HostileRequest) -> bool:
    """Whether Django fails while it builds the request object, before any middleware or view.

    WSGIRequest.__init__ sets ``encoding`` from the Content-Type's charset whenever Python
    knows the codec; that setter evaluates ``request.GET``. So a charset that is a codec but
    not a text encoding (``rot13``, ``hex``) with a percent-escape in the query string raises
    LookupError, and any charset with more than DATA_UPLOAD_MAX_NUMBER_FIELDS query fields
    raises TooManyFieldsSent, both before any middleware: the test client meets them as
    exceptions, and only the WSGI entry point answers them (``*_at_the_wsgi_entry_point``
    below).
    """
    if request.body is None:
        return False
    charset = parse_header_parameters(request.content_type)[1].get("charset")
    if charset is None:
        return False
    try:
        codecs.lookup(charset)
    except LookupError:
        return False  # Django ignores a charset Python does not know
    try:
        b"".decode(charset)
    except LookupError:
        return "%" in request.query  # a codec, but not a text encoding
    return request.query.count("&") >= 1000


@dataclass
class Sample:
    """What the requests refer to: payments in two tenants and tokens of every kind."""

    own_payment: str
    other_payment: str
    big_payment: str
    authorizations: dict[tuple[str, ...], str]

    def path(self, request: HostileRequest) -> str:
        payment = {"own": self.own_payment, "other-tenant": self.other_payment}.get(
            request.payment, request.payment
        )
        path = request.route.replace("{id}", payment)
        return f"{path}?{request.query}" if request.query else path

    def environ(self, request: HostileRequest, host: str | None, accept: str | None) -> dict:
        extra: dict[str, Any] = dict(request.headers)
        if request.authorization is not None:
            kind = request.authorization
            extra["HTTP_AUTHORIZATION"] = kind[1] if kind[0] == "raw" else self.authorizations[kind]
        if host is not None:
            extra["HTTP_HOST"] = host
        if accept is not None:
            extra["HTTP_ACCEPT"] = accept
        if request.body is None:
            return extra
        extra["CONTENT_TYPE"] = request.content_type
        # A stream that ends where the body ends, as a WSGI server's does.
        extra["wsgi.input"] = io.BytesIO(request.body)
        if request.length == "honest":
            extra["CONTENT_LENGTH"] = str(len(request.body))
        elif request.length == "chunked":
            extra["HTTP_TRANSFER_ENCODING"] = "chunked"
            extra["wsgi.input_terminated"] = True
        else:
            extra["CONTENT_LENGTH"] = request.length
        return extra


@pytest.fixture
def sample(fake_entra: FakeEntra, trusted_dev_issuer: None) -> Sample:
    valid = REFUNDER.headers(fake_entra)["HTTP_AUTHORIZATION"]
    authorizations = {
        ("caller", name): caller.headers(fake_entra)["HTTP_AUTHORIZATION"]
        for name, caller in CALLERS.items()
    }
    authorizations[("dev",)] = "Bearer " + mint_token(
        tenant_id=TENANT_A, scopes=["Payments.Write"], roles=["Payments.Admin"]
    )
    authorizations[("tampered",)] = valid[:-4] + ("AAAA" if not valid.endswith("AAAA") else "BBBB")
    expired = Caller(scopes=("Payments.Read",)).with_claims(exp=1_000_000_000, nbf=999_999_000)
    authorizations[("expired",)] = expired.headers(fake_entra)["HTTP_AUTHORIZATION"]
    authorizations[("twice",)] = f"{valid}, {valid}"
    return Sample(
        own_payment=str(PaymentFactory().id),
        other_payment=str(PaymentFactory(tenant_id=TENANT_B).id),
        big_payment=str(PaymentFactory(amount=Decimal("100000000.00")).id),
        authorizations=authorizations,
    )


def assert_clean_answer(response: Any, method: str, path: str, sent: bytes | None) -> None:
    """Below 500; on API paths, an error is the JSON shape with the response's request id.

    Nothing internal is in the answer, unless the client sent it (a field name is echoed).
    """
    assert response.status_code < 500, (response.status_code, response.content[:300])
    text = response.content.decode("utf-8", "replace")
    echoed = path + (sent or b"").decode("utf-8", "replace")
    for leak in INTERNALS:
        assert leak not in text or leak in echoed, (leak, text[:300])
    request_id = response.get("X-Request-ID")
    assert request_id
    is_api = path.startswith(("/api/", "/health/"))
    if response.status_code < 400 or not is_api or method == "HEAD":
        return
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert isinstance(body, dict)
    assert isinstance(body.get("detail"), str)
    assert body["detail"]
    assert body["request_id"] == request_id


@settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=HOSTILE_REQUESTS, host=HOSTS, accept=ACCEPTS)
def test_no_request_makes_any_route_answer_5xx(
    sample: Sample,
    row_counts: Callable[[], dict[str, int]],
    request: HostileRequest,
    host: str | None,
    accept: str | None,
) -> None:
    assume(not fails_before_any_middleware(request))
    path = sample.path(request)
    before = row_counts()

    response = Client().generic(request.method, path, **sample.environ(request, host, accept))

    assert_clean_answer(response, request.method, path, request.body)
    if response.status_code >= 400:
        assert row_counts() == before


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    query=st.lists(PARAMETER_PAIRS, max_size=4),
    caller=st.sampled_from(["reader", "app-reader", "writer"]),
)
def test_no_list_query_answers_5xx_and_a_refusal_names_the_parameter(
    sample: Sample, query: list[tuple[str, str]], caller: str
) -> None:
    path = f"{LIST}?{urlencode(query)}"

    response = Client().get(path, HTTP_AUTHORIZATION=sample.authorizations[("caller", caller)])

    assert_clean_answer(response, "GET", path, None)
    if response.status_code == 200:
        return
    assert response.status_code == 400, response.content
    named = set(response.json()) - {"detail", "request_id"}
    assert named, response.content
    assert named <= {name for name, _ in query}


# Creating and refunding, as callers allowed to: bodies close to valid, so that validation,
# idempotency keys and the refund rules run, not only the early refusals.
VALID_AMOUNTS = st.one_of(
    st.sampled_from(["12.50", "0.01", "1", "100.00", "1250"]),
    st.decimals(min_value=Decimal("0.01"), max_value=Decimal("100000"), places=2).map(
        lambda amount: f"{amount:f}"
    ),
)
NEAR_VALID_AMOUNTS = st.one_of(VALID_AMOUNTS, VALID_AMOUNTS, VALID_AMOUNTS, AMOUNTS)
CURRENCIES = st.one_of(
    st.just("EUR"), st.just("EUR"), st.sampled_from(["EUR", "JPY", "KWD", "XXX"]), LATIN1
)
CREATE_BODIES = st.one_of(
    st.fixed_dictionaries(
        {"amount": NEAR_VALID_AMOUNTS, "currency": CURRENCIES},
        optional={"description": st.text(max_size=600)},
    ),
    st.fixed_dictionaries({"amount": VALID_AMOUNTS, "currency": st.just("EUR")}),
    st.fixed_dictionaries(
        {"amount": NEAR_VALID_AMOUNTS},
        optional={"currency": CURRENCIES, "status": st.just("refunded"), "id": LATIN1},
    ),
    JSON_VALUES,
)
REFUND_BODIES = st.one_of(
    st.fixed_dictionaries({"amount": NEAR_VALID_AMOUNTS}),
    st.fixed_dictionaries({"amount": VALID_AMOUNTS}),
    st.fixed_dictionaries({"amount": NEAR_VALID_AMOUNTS}, optional={"currency": CURRENCIES}),
    JSON_VALUES,
)


@settings(
    max_examples=250,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    refund=st.booleans(),
    caller=st.sampled_from(["refunder", "app-writer", "dev"] * 3 + ["writer", "reader"]),
    create_body=CREATE_BODIES,
    refund_body=REFUND_BODIES,
    raw_body=st.one_of(
        st.none(),
        st.builds(nested, st.integers(min_value=1, max_value=10_000), st.sampled_from("[{")),
        st.integers(min_value=1, max_value=10_000).map(lambda n: '{"amount": ' + "9" * n + "}"),
    ),
    key=st.one_of(
        st.uuids().map(str),
        st.uuids().map(str),
        st.sampled_from(["order-1", "order-2"]),
        IDEMPOTENCY_KEYS,
        st.none(),
    ),
)
def test_no_payment_or_refund_request_answers_5xx(
    sample: Sample,
    row_counts: Callable[[], dict[str, int]],
    refund: bool,
    caller: str,
    create_body: Any,
    refund_body: Any,
    raw_body: str | None,
    key: str | None,
) -> None:
    path = f"{LIST}{sample.big_payment}/refund/" if refund else LIST
    authorization = sample.authorizations[(caller,) if caller == "dev" else ("caller", caller)]
    headers = {"HTTP_AUTHORIZATION": authorization}
    if key is not None:
        headers["HTTP_IDEMPOTENCY_KEY"] = key
    raw = (raw_body or json.dumps(refund_body if refund else create_body)).encode()
    before = row_counts()

    response = Client().post(path, raw, content_type="application/json", **headers)

    assert_clean_answer(response, "POST", path, raw)
    after = row_counts()
    if response.status_code >= 400 or response.get("Idempotent-Replayed") == "true":
        assert after == before
    else:
        assert response.status_code == 201, response.content
        made = "refunds" if refund else "payments"
        assert after[made] == before[made] + 1


# --- regressions: each input that used to answer 500 ----------------------------------------


@pytest.fixture
def read(call: Callable[..., Any], db: None) -> Callable[[dict[str, Any]], Any]:
    PaymentFactory()
    return lambda params: call(READER, "get", LIST, params)


@pytest.mark.parametrize(
    ("params", "errors"),
    [
        pytest.param(
            {"created_after": "0001-01-01T00:00:00+14:00"},
            {"created_after": [DATE_RANGE_HELP]},
            id="after-year-1-east-of-utc",
        ),
        pytest.param(
            {"created_before": "9999-12-31T23:59:59-14:00"},
            {"created_before": [DATE_RANGE_HELP]},
            id="before-year-9999-west-of-utc",
        ),
        pytest.param(
            {"created_after": "0001-01-01T00:00:00Z"},
            {"created_after": [DATE_RANGE_HELP]},
            id="after-the-first-day",
        ),
        pytest.param(
            {"created_before": "99999-01-01T00:00:00Z"},
            {"created_before": [DATE_HELP]},
            id="a-five-digit-year",
        ),
        pytest.param(
            {"created_after": "+10000-01-01T00:00:00Z"},
            {"created_after": [DATE_HELP]},
            id="a-signed-year",
        ),
        pytest.param(
            {"created_after": "2026-01-01T00:00:00\x00Z"},
            {"created_after": [DATE_HELP]},
            id="a-control-character",
        ),
        pytest.param(
            {"created_after": "\u0662\u0660\u0662\u0666-01-01T00:00:00Z"},
            {"created_after": [DATE_HELP]},
            id="non-ascii-digits",
        ),
    ],
)
def test_dates_beyond_what_the_database_compares_are_a_400_naming_the_parameter(
    read: Callable[[dict[str, Any]], Any],
    error_body: Callable[[Any, int], dict[str, Any]],
    params: dict[str, str],
    errors: dict[str, list[str]],
) -> None:
    assert error_body(read(params), 400) == {"detail": INVALID, **errors}


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("0001-01-02T00:00:00Z", id="the-earliest"),
        pytest.param("9999-12-30T23:59:59.999999Z", id="the-latest"),
        pytest.param("0001-01-02T14:00:00+14:00", id="the-earliest-with-an-offset"),
    ],
)
def test_dates_at_the_edges_of_the_range_are_accepted(
    read: Callable[[dict[str, Any]], Any], value: str
) -> None:
    assert read({"created_after": value}).status_code == 200
    assert read({"created_before": value}).status_code == 200


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("garbage", id="not-base64"),
        pytest.param("%%%", id="not-ascii-base64"),
        pytest.param(base64.b64encode(b"\xff\xfe").decode(), id="not-ascii-inside"),
        pytest.param(cursor(o="-1"), id="a-negative-offset"),
        pytest.param(cursor(o="x"), id="an-offset-that-is-no-number"),
        pytest.param(cursor(r="x"), id="a-direction-that-is-no-number"),
        pytest.param(cursor(p="not-a-date"), id="a-position-that-is-no-date"),
        pytest.param(cursor(p="2026-01-01"), id="a-position-without-a-time"),
        pytest.param(cursor(p="2026-01-01 00:00:00"), id="a-position-without-a-time-zone"),
        pytest.param(cursor(p="0001-01-01 00:00:00+14:00"), id="a-position-in-year-0-utc"),
        pytest.param(cursor(p="9999-12-31 23:59:59-14:00"), id="a-position-in-year-10000-utc"),
        pytest.param(cursor(p="99999-01-01 00:00:00+00:00"), id="a-position-in-year-99999"),
        pytest.param(cursor(p="2026-01-01 00:00:00+24:00"), id="an-offset-of-a-day"),
    ],
)
def test_a_tampered_cursor_is_a_400_naming_the_cursor(
    read: Callable[[dict[str, Any]], Any],
    error_body: Callable[[Any, int], dict[str, Any]],
    value: str,
) -> None:
    assert error_body(read({"cursor": value}), 400) == {"detail": INVALID, "cursor": [CURSOR_HELP]}


def test_the_cursors_the_api_gives_still_walk_every_page(call: Callable[..., Any]) -> None:
    made = {str(PaymentFactory().id) for _ in range(5)}

    seen: list[str] = []
    page = call(READER, "get", LIST, {"page_size": 2})
    while True:
        assert page.status_code == 200, page.content
        seen += [row["id"] for row in page.json()["results"]]
        if not page.json()["next"]:
            break
        page = call(READER, "get", page.json()["next"])
    back = call(READER, "get", page.json()["previous"])

    assert sorted(seen) == sorted(made) and len(seen) == len(made)
    assert back.status_code == 200 and back.json()["results"]


@pytest.mark.parametrize(
    "value", ["lots", "-3", "0", "000", "1.5", "1e3", " 5", "+5", "\u0665", "", "\x00"]
)
def test_a_page_size_that_is_not_a_whole_number_from_1_is_a_400_naming_it(
    read: Callable[[dict[str, Any]], Any],
    error_body: Callable[[Any, int], dict[str, Any]],
    value: str,
) -> None:
    assert error_body(read({"page_size": value}), 400) == {
        "detail": INVALID,
        "page_size": [PAGE_SIZE_HELP],
    }


def test_a_page_size_of_thousands_of_digits_is_capped(read: Callable[..., Any]) -> None:
    response = read({"page_size": "9" * 5000})

    assert response.status_code == 200
    assert len(response.json()["results"]) == 1


@pytest.fixture
def post(api_client: Any, fake_entra: FakeEntra, db: None) -> Callable[..., Any]:
    """``post(path, body, **environ)``: raw bytes as the refunder, an application/json body."""
    headers = REFUNDER.headers(fake_entra)

    def send(path: str, body: bytes, **environ: Any) -> Any:
        return api_client.generic(
            "POST", path, body, content_type="application/json", **headers, **environ
        )

    return send


@pytest.fixture(params=["create", "refund"])
def path(request: pytest.FixtureRequest, db: None) -> str:
    """Where a body goes: the list (create) or a payment of the caller's tenant (refund)."""
    return LIST if request.param == "create" else f"{LIST}{PaymentFactory().id}/refund/"


@pytest.mark.parametrize(
    ("body", "limit"),
    [
        pytest.param(nested(30_000), None, id="30000-nested-arrays"),
        pytest.param(nested(10_000, "{"), None, id="10000-nested-objects"),
        pytest.param(nested(100_000), 1_000_000, id="100000-nested-arrays-under-a-larger-cap"),
    ],
)
def test_deeply_nested_json_is_a_400_with_nothing_created(
    post: Callable[..., Any],
    configure: Callable[..., None],
    error_body: Callable[[Any, int], dict[str, Any]],
    row_counts: Callable[[], dict[str, int]],
    path: str,
    body: str,
    limit: int | None,
) -> None:
    if limit is not None:
        configure(
            TENANT_ID="organizations",
            ALLOWED_TENANTS=[TENANT_A, TENANT_B],
            MAX_REQUEST_BODY_BYTES=limit,
        )
    before = row_counts()

    response = post(path, body.encode())

    assert error_body(response, 400) == {"detail": NESTED_TOO_DEEPLY}
    assert row_counts() == before


@pytest.mark.parametrize(
    "size",
    [
        pytest.param(LIMIT + 1, id="just-over-the-cap"),
        pytest.param(2_621_440 + 1, id="over-djangos-upload-limit"),
    ],
)
def test_a_declared_body_over_the_cap_is_a_413_before_it_is_read(
    post: Callable[..., Any],
    error_body: Callable[[Any, int], dict[str, Any]],
    row_counts: Callable[[], dict[str, int]],
    path: str,
    size: int,
) -> None:
    stream = io.BytesIO(b" " * size)
    before = row_counts()

    response = post(path, b"", CONTENT_LENGTH=str(size), **{"wsgi.input": stream})

    assert error_body(response, 413) == {"detail": TOO_LARGE}
    assert stream.tell() == 0
    assert row_counts() == before


def test_a_chunked_body_over_the_cap_is_a_413_after_reading_one_byte_past_it(
    post: Callable[..., Any],
    error_body: Callable[[Any, int], dict[str, Any]],
    row_counts: Callable[[], dict[str, int]],
    path: str,
) -> None:
    stream = io.BytesIO(
        b'{"amount": "1.00", "currency": "EUR", "description": "' + b"x" * 3_000_000
    )
    before = row_counts()

    response = post(
        path,
        b"",
        HTTP_TRANSFER_ENCODING="chunked",
        **{"wsgi.input": stream, "wsgi.input_terminated": True},
    )

    assert error_body(response, 413) == {"detail": TOO_LARGE}
    assert stream.tell() == LIMIT + 1
    assert row_counts() == before


def test_a_chunked_payment_within_the_cap_is_created(
    post: Callable[..., Any], row_counts: Callable[[], dict[str, int]]
) -> None:
    body = b'{"amount": "1.00", "currency": "EUR"}'
    before = row_counts()

    response = post(
        LIST,
        b"",
        HTTP_TRANSFER_ENCODING="chunked",
        HTTP_IDEMPOTENCY_KEY="chunked-order-1",
        **{"wsgi.input": io.BytesIO(body), "wsgi.input_terminated": True},
    )

    assert response.status_code == 201, response.content
    assert response.json()["amount"] == "1.00"
    assert row_counts()["payments"] == before["payments"] + 1


@pytest.mark.parametrize("length", ["abc", "-1", "1.5", " 38", "\u0663\u0668"])
def test_a_content_length_that_is_not_a_whole_number_is_a_400(
    post: Callable[..., Any],
    error_body: Callable[[Any, int], dict[str, Any]],
    row_counts: Callable[[], dict[str, int]],
    path: str,
    length: str,
) -> None:
    body = b'{"amount": "1.00", "currency": "EUR"}'
    before = row_counts()

    response = post(path, b"", CONTENT_LENGTH=length, **{"wsgi.input": io.BytesIO(body)})

    assert error_body(response, 400) == {"detail": BAD_LENGTH}
    assert row_counts() == before


def test_a_number_of_thousands_of_digits_is_a_400(
    post: Callable[..., Any],
    error_body: Callable[[Any, int], dict[str, Any]],
    path: str,
) -> None:
    response = post(path, b'{"amount": ' + b"9" * 5000 + b', "currency": "EUR"}')

    assert error_body(response, 400) == {"detail": "The request body is not valid JSON."}


# --- Django's refusals (SuspiciousOperation) are JSON 4xx in the sample too -----------------


def test_too_many_query_parameters_are_a_json_400(
    call: Callable[..., Any], error_body: Callable[[Any, int], dict[str, Any]]
) -> None:
    response = call(READER, "get", LIST + "?" + "a=1&" * 1001)

    assert error_body(response, 400) == {"detail": INVALID}


@pytest.mark.parametrize("path", ["/api/me/", LIST, "/api/no-such/", "/health/live"])
def test_a_host_not_allowed_is_a_json_400(
    api_client: Any,
    fake_entra: FakeEntra,
    error_body: Callable[[Any, int], dict[str, Any]],
    path: str,
) -> None:
    response = api_client.get(path, HTTP_HOST="evil.example", **READER.headers(fake_entra))

    assert error_body(response, 400) == {"detail": INVALID}
    assert "evil.example" not in response.content.decode()


# --- what no middleware can answer: Django fails while building the request ------------------
# Django parses the query string inside WSGIRequest.__init__ when Content-Type names a
# charset, before any middleware, so only the WSGI entry point (project/wsgi.py) can answer.


def _wsgi_get(query: str, content_type: str) -> tuple[str, bytes]:
    from project.wsgi import application

    environ = RequestFactory().get(LIST, CONTENT_TYPE=content_type).environ
    environ["QUERY_STRING"] = query
    environ["REQUEST_METHOD"] = "GET"
    status: list[str] = []
    body = b"".join(application(environ, lambda line, headers: status.append(line)))
    return status[0], body


@pytest.mark.parametrize("charset", ["rot13", "hex"])
def test_a_charset_that_is_no_text_encoding_is_a_400_at_the_wsgi_entry_point(charset):
    status, body = _wsgi_get("status=%41", f"application/json; charset={charset}")

    assert status.startswith("400")
    assert json.loads(body)["detail"] == "The request is invalid."


def test_too_many_query_fields_with_a_charset_is_a_400_at_the_wsgi_entry_point():
    status, body = _wsgi_get("a=1&" * 1001, "application/json; charset=utf-8")

    assert status.startswith("400")
    assert json.loads(body)["detail"] == "The request is invalid."


def test_the_wsgi_entry_point_serves_ordinary_requests_as_before():
    status, _body = _wsgi_get("", "application/json; charset=utf-8")

    assert status.startswith("401")  # no token: the API's own answer
