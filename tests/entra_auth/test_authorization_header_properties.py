"""Property: no Authorization header value, however odd, makes the API answer 500."""

from __future__ import annotations

import base64

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

pytestmark = pytest.mark.django_db

# WSGI hands header values over as latin-1 text.
HEADER_TEXT = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=300)
SCHEMES = st.sampled_from(["Bearer", "bearer", "BEARER", "Basic", "", "Bearer ", "Bearer\t"])


def _segment(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


JWT_LIKE = st.tuples(st.binary(max_size=80), st.binary(max_size=200), st.binary(max_size=64)).map(
    lambda parts: ".".join(_segment(part) for part in parts)
)
JSON_SEGMENTS = st.tuples(
    st.fixed_dictionaries(
        {"alg": st.sampled_from(["RS256", "none", "HS256"]), "kid": st.text(max_size=8)},
        optional={"typ": st.text(max_size=4), "crit": st.just(["b64"]), "jku": st.text(max_size=8)},
    ),
    st.dictionaries(
        st.sampled_from(["iss", "aud", "exp", "nbf", "tid", "oid", "ver", "scp", "roles"]),
        st.one_of(st.text(max_size=40), st.integers(), st.floats(), st.lists(st.text(max_size=5))),
    ),
).map(
    lambda parts: (
        ".".join(_segment(repr(part).replace("'", '"').encode()) for part in parts) + ".c2ln"
    )
)
HEADER_VALUES = st.one_of(
    HEADER_TEXT,
    st.tuples(SCHEMES, HEADER_TEXT).map(" ".join),
    st.tuples(SCHEMES, JWT_LIKE).map(" ".join),
    st.tuples(SCHEMES, JSON_SEGMENTS).map(" ".join),
)


@hypothesis_settings(
    derandomize=True,
    deadline=None,
    max_examples=300,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(header=HEADER_VALUES)
def test_any_authorization_header_is_answered_401_never_500(fake_entra, api_client, header):
    response = api_client.get("/api/me/", HTTP_AUTHORIZATION=header)

    assert response.status_code == 401, (header, response.content)
    body = response.json()
    assert body["detail"] and body["request_id"] == response["X-Request-ID"]
    assert response["WWW-Authenticate"].startswith('Bearer realm="api"')
    assert "Traceback" not in response.content.decode()
