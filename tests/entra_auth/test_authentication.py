"""``EntraJWTAuthentication`` over real HTTP: ``GET /api/me/`` with the test client.

The rules are those of docs/tokens.md and docs/errors.md.

Every refusal is checked as a client sees it: the status, the exact RFC 6750 challenge in
``WWW-Authenticate``, a JSON body with ``detail`` and the request id, and nothing internal
(traceback, exception class, key material, the token itself). Tokens come from the fake Entra
server (``tests/fake_entra.py``), whose metadata and JWKS the library fetches over loopback HTTP.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from entra_auth import tokens
from entra_auth.authentication import EntraJWTAuthentication
from entra_auth.exceptions import InvalidBearerToken
from entra_auth.tokens import (
    BadSignature,
    ClientAppNotAllowed,
    Expired,
    GuestNotAllowed,
    MalformedToken,
    NotAnAccessToken,
    NotYetValid,
    TenantNotAllowed,
    TokenError,
    UnknownIssuer,
    UnknownSigningKey,
    UnsupportedTokenHeader,
    WrongAudience,
)
from entra_auth.validation import TokenValidator, get_validator
from tests.fake_entra import (
    CLIENT_APP_ID,
    CLIENT_ID,
    DROP,
    MULTI_TENANT,
    OTHER_CLIENT_APP_ID,
    TENANT_A,
    TENANT_B,
    TENANT_OTHER,
    FakeEntra,
    b64url,
    public_jwk,
    self_signed_certificate,
    sign,
)

pytestmark = pytest.mark.django_db

ME = "/api/me/"
# The default leeway on exp/nbf/iat (docs/configuration.md); the margins keep every test far
# from the edge.
SKEW_S = 300
BEYOND_SKEW_S = SKEW_S + 60
WITHIN_SKEW_S = SKEW_S - 60
LIFETIME_S = 3600
MAX_HEADER_BYTES = 16 * 1024
B64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
ATTACKER_KID = "attacker-key"
ACCEPTED_CLIENT_APP = CLIENT_APP_ID
REALM_CHALLENGE = 'Bearer realm="api"'


def _class_names(root: type) -> set[str]:
    names = {root.__name__}
    for subclass in root.__subclasses__():
        names |= _class_names(subclass)
    return names


# Markers of internals that must never reach a client (docs/errors.md).
INTERNAL_MARKERS = frozenset(
    {
        "Traceback",
        'File "',
        "Error",
        "Exception",
        "KeysUnavailable",
        "InvalidBearerRequest",
        "InvalidBearerToken",
        "AuthenticationUnavailable",
        "-----BEGIN",
        *_class_names(TokenError),
    }
)


# -- helpers ----------------------------------------------------------------------------------


def now_s() -> int:
    return int(time.time())


def bearer(token: str) -> str:
    return f"Bearer {token}"


@functools.cache
def attacker_key() -> rsa.RSAPrivateKey:
    """A key the issuer never published (made once: RSA generation is slow)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def trusted_header(fake: FakeEntra, **members: Any) -> dict[str, Any]:
    return {"typ": "JWT", "alg": "RS256", "kid": fake.signing_key.kid, **members}


def rs256(private_key: rsa.RSAPrivateKey, signing_input: str) -> bytes:
    return private_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())


def forge(
    header: dict[str, Any] | bytes,
    payload: dict[str, Any] | bytes,
    private_key: rsa.RSAPrivateKey | None,
) -> str:
    """A JWS over exactly these header and payload bytes, RS256-signed when a key is given."""
    raw_header = header if isinstance(header, bytes) else json.dumps(header).encode()
    raw_payload = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    signing_input = f"{b64url(raw_header)}.{b64url(raw_payload)}"
    signature = b"" if private_key is None else rs256(private_key, signing_input)
    return f"{signing_input}.{b64url(signature)}"


def signed(fake: FakeEntra, claims: dict[str, Any]) -> str:
    """Claims signed by the issuer's current key, exactly as Entra would."""
    return sign(claims, fake.signing_key.private_key, {"kid": fake.signing_key.kid})


def public_pem(fake: FakeEntra) -> bytes:
    return fake.signing_key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def get_me(client: Any, authorization: str | None = None) -> Any:
    if authorization is None:
        return client.get(ME)
    return client.get(ME, HTTP_AUTHORIZATION=authorization)


def quoted(value: str) -> str:
    """An RFC 7230 quoted-string, as the challenge carries ``error_description``."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def assert_safe_error_body(response: Any, fake: FakeEntra, sent: str | None) -> dict[str, Any]:
    """JSON with ``detail`` and the request id; no traceback, class, key, URL or token."""
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body.get("detail"), str)
    assert body["detail"]
    assert body["request_id"]
    assert body["request_id"] == response["X-Request-ID"]

    exposed = response.content.decode() + response.get("WWW-Authenticate", "")
    leaked = {marker for marker in INTERNAL_MARKERS if marker in exposed}
    assert not leaked, f"internals in the response: {sorted(leaked)}"
    signing_jwk = public_jwk(fake.signing_key.private_key, fake.signing_key.kid)
    for secret in (public_pem(fake).decode(), signing_jwk["n"], fake.base_url):
        assert secret not in exposed
    if sent:
        # The token, and every segment long enough to mean something, stays out of the answer.
        for fragment in (sent, *(part for part in sent.split(".") if len(part) >= 16)):
            assert fragment not in exposed
    return body


def assert_invalid_token(
    response: Any, fake: FakeEntra, token: str, detail: str | None = None
) -> None:
    """401 with ``error="invalid_token"`` and a description that says why (RFC 6750 §3.1)."""
    assert response.status_code == 401, response.content
    body = assert_safe_error_body(response, fake, token)
    if detail is not None:
        assert detail in body["detail"]
    assert response["WWW-Authenticate"] == (
        f'{REALM_CHALLENGE}, error="invalid_token", error_description={quoted(body["detail"])}'
    )


def assert_invalid_request(response: Any, fake: FakeEntra, authorization: str) -> None:
    """401 with ``error="invalid_request"``: the Authorization header itself is malformed."""
    assert response.status_code == 401, response.content
    body = assert_safe_error_body(response, fake, authorization.partition(" ")[2])
    assert response["WWW-Authenticate"] == (
        f'{REALM_CHALLENGE}, error="invalid_request", error_description={quoted(body["detail"])}'
    )


def assert_no_credentials_challenge(response: Any, fake: FakeEntra, token: str) -> None:
    """401 with a bare challenge: no Bearer credentials were presented (RFC 6750 §3.1)."""
    assert response.status_code == 401, response.content
    assert_safe_error_body(response, fake, token)
    assert response["WWW-Authenticate"] == REALM_CHALLENGE


def assert_accepted(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def fetched_urls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every URL the library asks ``requests`` for (the real request still goes out)."""
    urls: list[str] = []
    real_request = requests.Session.request

    def recording_request(self: requests.Session, method: str, url: str, *args, **kwargs):
        urls.append(url)
        return real_request(self, method, url, *args, **kwargs)

    monkeypatch.setattr(requests.Session, "request", recording_request)
    return urls


@pytest.fixture
def signature_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ``kid`` of every RS256 verification the core performs."""
    checks: list[str] = []
    real_verify = tokens.verify_signature

    def counting_verify(parsed: tokens.ParsedToken, key: tokens.SigningKey) -> None:
        checks.append(key.kid)
        real_verify(parsed, key)

    monkeypatch.setattr(tokens, "verify_signature", counting_verify)
    return checks


# -- hostile tokens ---------------------------------------------------------------------------


def unsigned_alg_none(fake: FakeEntra) -> str:
    return forge(trusted_header(fake, alg="none"), fake.claims(), None)


def alg_none_with_a_signature(fake: FakeEntra) -> str:
    return forge(trusted_header(fake, alg="none"), fake.claims(), fake.signing_key.private_key)


def hs256_keyed_with_the_public_key(fake: FakeEntra) -> str:
    """Algorithm confusion: HMAC keyed with the published RSA public key."""
    header = trusted_header(fake, alg="HS256")
    signing_input = forge(header, fake.claims(), None).removesuffix(".")
    mac = hmac.new(public_pem(fake), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def foreign_key_under_a_known_kid(fake: FakeEntra) -> str:
    return forge(trusted_header(fake), fake.claims(), attacker_key())


def embedded_jwk_with_the_attackers_kid(fake: FakeEntra) -> str:
    jwk = public_jwk(attacker_key(), ATTACKER_KID)
    return forge(trusted_header(fake, kid=ATTACKER_KID, jwk=jwk), fake.claims(), attacker_key())


def embedded_jwk_under_a_known_kid(fake: FakeEntra) -> str:
    jwk = public_jwk(attacker_key(), fake.signing_key.kid)
    return forge(trusted_header(fake, jwk=jwk), fake.claims(), attacker_key())


def embedded_x5c_certificate(fake: FakeEntra) -> str:
    chain = [self_signed_certificate(attacker_key())]
    return forge(trusted_header(fake, x5c=chain), fake.claims(), attacker_key())


def critical_extension(fake: FakeEntra) -> str:
    header = trusted_header(fake, crit=["http://example.com/ext"], **{"http://example.com/ext": 1})
    return forge(header, fake.claims(), fake.signing_key.private_key)


def no_kid(fake: FakeEntra) -> str:
    header = {"typ": "JWT", "alg": "RS256"}
    return forge(header, fake.claims(), fake.signing_key.private_key)


def two_parts(fake: FakeEntra) -> str:
    return fake.token().rsplit(".", 1)[0]


def four_parts(fake: FakeEntra) -> str:
    return f"{fake.token()}.{b64url(b'extra')}"


def padded_signature(fake: FakeEntra) -> str:
    """An RS256-2048 signature is 342 base64url characters: canonical form has no ``==``."""
    return f"{fake.token()}=="


def signature_with_trailing_bits(fake: FakeEntra) -> str:
    """Same bytes for a lenient decoder, but the unused low bits of the last character are set."""
    token = fake.token()
    last = B64URL_ALPHABET.index(token[-1])
    return token[:-1] + B64URL_ALPHABET[last | 0b1]


def payload_of(raw_payload: bytes) -> Callable[[FakeEntra], str]:
    def build(fake: FakeEntra) -> str:
        return forge(trusted_header(fake), raw_payload, fake.signing_key.private_key)

    return build


def duplicate_audience_member(fake: FakeEntra) -> str:
    """A last-member-wins JSON parser would read the right ``aud``; a strict one refuses."""
    claims = json.dumps(fake.claims(audience="api://someone-else"))
    payload = claims[:-1] + f', "aud": "{CLIENT_ID}"}}'
    return forge(trusted_header(fake), payload.encode(), fake.signing_key.private_key)


def duplicate_alg_member(fake: FakeEntra) -> str:
    kid = fake.signing_key.kid
    header = f'{{"typ": "JWT", "alg": "none", "alg": "RS256", "kid": "{kid}"}}'.encode()
    return forge(header, fake.claims(), fake.signing_key.private_key)


def infinite_exp(fake: FakeEntra) -> str:
    payload = json.dumps(fake.claims(exp=0)).replace('"exp": 0', '"exp": 1e999')
    return forge(trusted_header(fake), payload.encode(), fake.signing_key.private_key)


def huge_integer_claim(name: str) -> Callable[[FakeEntra], str]:
    """A JSON integer too large for a float: still a number to Python's JSON decoder."""

    def build(fake: FakeEntra) -> str:
        huge = "1" + "0" * 400
        payload = json.dumps(fake.claims(**{name: 0})).replace(f'"{name}": 0', f'"{name}": {huge}')
        return forge(trusted_header(fake), payload.encode(), fake.signing_key.private_key)

    return build


def expired_for(seconds: int) -> Callable[[FakeEntra], str]:
    def build(fake: FakeEntra) -> str:
        return fake.token(now=now_s() - LIFETIME_S - seconds, lifetime_s=LIFETIME_S)

    return build


HOSTILE_TOKENS = [
    # Header: the algorithm is an allow-list, keys come from the issuer's JWKS only.
    pytest.param(unsigned_alg_none, MalformedToken.detail, id="alg-none-unsigned"),
    pytest.param(alg_none_with_a_signature, UnsupportedTokenHeader.detail, id="alg-none-signed"),
    pytest.param(hs256_keyed_with_the_public_key, UnsupportedTokenHeader.detail, id="hs256-pem"),
    pytest.param(foreign_key_under_a_known_kid, BadSignature.detail, id="foreign-key-known-kid"),
    pytest.param(embedded_jwk_with_the_attackers_kid, UnknownSigningKey.detail, id="jwk-own-kid"),
    pytest.param(embedded_jwk_under_a_known_kid, BadSignature.detail, id="jwk-known-kid"),
    pytest.param(embedded_x5c_certificate, BadSignature.detail, id="x5c"),
    pytest.param(critical_extension, UnsupportedTokenHeader.detail, id="crit"),
    pytest.param(no_kid, "'kid'", id="no-kid"),
    # Lifetime, with the 300 s skew.
    pytest.param(expired_for(BEYOND_SKEW_S), Expired.detail, id="expired-beyond-skew"),
    pytest.param(
        lambda fake: fake.token(nbf=now_s() + BEYOND_SKEW_S),
        NotYetValid.detail,
        id="nbf-beyond-skew",
    ),
    pytest.param(
        lambda fake: fake.token(iat=now_s() + BEYOND_SKEW_S),
        NotYetValid.detail,
        id="iat-beyond-skew",
    ),
    pytest.param(lambda fake: fake.token(exp="9999999999"), "'exp'", id="string-exp"),
    pytest.param(lambda fake: fake.token(exp=True), "'exp'", id="boolean-exp"),
    pytest.param(lambda fake: fake.token(exp=DROP), "'exp'", id="missing-exp"),
    pytest.param(infinite_exp, "'exp'", id="infinite-exp"),
    pytest.param(huge_integer_claim("exp"), "'exp'", id="huge-integer-exp"),
    pytest.param(lambda fake: fake.token(nbf="0"), "'nbf'", id="string-nbf"),
    pytest.param(huge_integer_claim("nbf"), "'nbf'", id="huge-integer-nbf"),
    # Audience and issuer.
    pytest.param(
        lambda fake: fake.token(audience="api://someone-else"), WrongAudience.detail, id="wrong-aud"
    ),
    pytest.param(
        lambda fake: fake.token(iss=f"https://login.microsoftonline.com/{TENANT_A}/v2.0"),
        UnknownIssuer.detail,
        id="wrong-iss",
    ),
    pytest.param(
        lambda fake: fake.token(tenant=TENANT_B), UnknownIssuer.detail, id="other-tenant-iss"
    ),
    pytest.param(lambda fake: fake.token(tid=TENANT_B), "tenant", id="tid-not-the-iss-tenant"),
    pytest.param(lambda fake: fake.token(ver=DROP), "'ver'", id="missing-ver"),
    pytest.param(lambda fake: fake.token(ver="3.0"), "'ver'", id="unknown-ver"),
    pytest.param(
        lambda fake: fake.token(version="1.0", ver="2.0"), UnknownIssuer.detail, id="v1-says-v2"
    ),
    pytest.param(
        lambda fake: fake.token(version="2.0", ver="1.0"), UnknownIssuer.detail, id="v2-says-v1"
    ),
    # Token type: an ID token is not an access token.
    pytest.param(lambda fake: fake.token(scp=DROP), NotAnAccessToken.detail, id="no-scp-or-roles"),
    pytest.param(lambda fake: fake.token(azp=DROP), NotAnAccessToken.detail, id="v2-no-azp"),
    pytest.param(
        lambda fake: fake.token(version="1.0", appid=DROP),
        NotAnAccessToken.detail,
        id="v1-no-appid",
    ),
    # Identity claims.
    pytest.param(lambda fake: fake.token(tid=DROP), "'tid'", id="missing-tid"),
    pytest.param(lambda fake: fake.token(tid="contoso"), "'tid'", id="non-guid-tid"),
    pytest.param(lambda fake: fake.token(oid=DROP), "'oid'", id="missing-oid"),
    pytest.param(lambda fake: fake.token(oid="ada@contoso"), "'oid'", id="non-guid-oid"),
    # Structure and encoding.
    pytest.param(lambda fake: "a.b.c", MalformedToken.detail, id="a.b.c"),
    pytest.param(two_parts, MalformedToken.detail, id="two-parts"),
    pytest.param(four_parts, MalformedToken.detail, id="four-parts"),
    pytest.param(padded_signature, MalformedToken.detail, id="padded-base64url"),
    pytest.param(signature_with_trailing_bits, MalformedToken.detail, id="trailing-bits"),
    pytest.param(payload_of(b"not json"), MalformedToken.detail, id="non-json-payload"),
    pytest.param(payload_of(b'["aud", "iss"]'), MalformedToken.detail, id="json-array-payload"),
    pytest.param(duplicate_audience_member, "duplicated JSON member", id="duplicate-payload-aud"),
    pytest.param(duplicate_alg_member, "duplicated JSON member", id="duplicate-header-alg"),
]


@pytest.mark.parametrize(("build_token", "detail"), HOSTILE_TOKENS)
def test_hostile_token_is_rejected_with_invalid_token(fake_entra, api_client, build_token, detail):
    # Given a token that breaks one rule of docs/tokens.md
    token = build_token(fake_entra)

    # When it is presented as a Bearer token
    response = get_me(api_client, bearer(token))

    # Then it is refused with invalid_token, saying why, and revealing nothing else
    assert_invalid_token(response, fake_entra, token, detail)


@pytest.mark.parametrize("ver", [[], {}, ["2.0"]], ids=["empty-list", "object", "list"])
def test_forged_token_with_a_non_string_ver_is_rejected_not_a_server_error(
    fake_entra, api_client, ver
):
    # Given a token anyone can make: the attacker's key, and a 'ver' that is not a string
    token = forge(trusted_header(fake_entra), fake_entra.claims(ver=ver), attacker_key())

    # When it is presented
    response = get_me(api_client, bearer(token))

    # Then it is refused like any other bad token, not answered with a 500
    assert_invalid_token(response, fake_entra, token)


def fake_server_url(path: str) -> Callable[[FakeEntra], str]:
    return lambda fake: f"{fake.base_url}{path}"


def localhost_url(path: str) -> Callable[[FakeEntra], str]:
    """The fake server under another name for the loopback host."""
    return lambda fake: fake.base_url.replace("127.0.0.1", "localhost") + path


KEY_LOCATION_HEADERS = [
    pytest.param("jku", fake_server_url("attacker/keys.json"), id="jku-fake-server"),
    pytest.param("jku", localhost_url("attacker/keys.json"), id="jku-localhost"),
    pytest.param("x5u", fake_server_url("attacker/cert.pem"), id="x5u-fake-server"),
    pytest.param("x5u", lambda fake: "http://127.0.0.1:9/attacker/cert.pem", id="x5u-loopback"),
]


@pytest.mark.parametrize(("member", "build_url"), KEY_LOCATION_HEADERS)
@pytest.mark.parametrize(
    ("kid", "detail"),
    [
        pytest.param(ATTACKER_KID, UnknownSigningKey.detail, id="attacker-kid"),
        pytest.param(None, BadSignature.detail, id="known-kid"),
    ],
)
def test_key_location_headers_are_never_fetched(
    fake_entra, api_client, fetched_urls, member, build_url, kid, detail
):
    # Given a token signed by the attacker whose header says where to find "its" key
    url = build_url(fake_entra)
    header = trusted_header(fake_entra, kid=kid or fake_entra.signing_key.kid, **{member: url})
    token = forge(header, fake_entra.claims(), attacker_key())

    # When it is presented
    response = get_me(api_client, bearer(token))

    # Then it is refused, and only the issuer's metadata and JWKS were ever fetched
    assert_invalid_token(response, fake_entra, token, detail)
    assert fake_entra.requests_to("other") == 0
    assert url not in fetched_urls
    assert fetched_urls
    assert all(fetched.startswith(f"{fake_entra.base_url}{TENANT_A}/") for fetched in fetched_urls)


# -- tokens that follow the rules -------------------------------------------------------------

ACCEPTED_TOKENS = [
    pytest.param(lambda fake: fake.token(), id="v2-delegated"),
    pytest.param(lambda fake: fake.token(version="1.0"), id="v1-delegated"),
    pytest.param(lambda fake: fake.token(app_only=True, roles=("Payments.Read.All",)), id="app"),
    pytest.param(expired_for(WITHIN_SKEW_S), id="expired-within-skew"),
    pytest.param(lambda fake: fake.token(nbf=now_s() + WITHIN_SKEW_S), id="nbf-within-skew"),
    pytest.param(lambda fake: fake.token(iat=now_s() + WITHIN_SKEW_S), id="iat-within-skew"),
    pytest.param(lambda fake: fake.token(aud=["https://graph.example", CLIENT_ID]), id="aud-list"),
    pytest.param(lambda fake: fake.token(audience=f"api://{CLIENT_ID}"), id="v2-app-id-uri-aud"),
]


@pytest.mark.parametrize("build_token", ACCEPTED_TOKENS)
def test_token_that_follows_every_rule_is_accepted(fake_entra, api_client, build_token):
    token = build_token(fake_entra)

    response = get_me(api_client, bearer(token))

    assert_accepted(response)


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer", "bEaReR"])
def test_bearer_scheme_is_case_insensitive(fake_entra, api_client, scheme):
    response = get_me(api_client, f"{scheme} {fake_entra.token()}")

    assert_accepted(response)


# -- the Authorization header -----------------------------------------------------------------


def padded_payload_segment(fake: FakeEntra) -> str:
    """A correctly signed token whose payload segment keeps its base64 ``=`` padding."""
    claims = json.dumps(fake.claims())
    if len(claims) % 3 == 0:
        claims += " "  # JSON whitespace, so that base64 needs padding
    header_segment = b64url(json.dumps(trusted_header(fake)).encode())
    payload_segment = base64.urlsafe_b64encode(claims.encode()).decode()
    assert payload_segment.endswith("=")
    signing_input = f"{header_segment}.{payload_segment}"
    return f"{signing_input}.{b64url(rs256(fake.signing_key.private_key, signing_input))}"


MALFORMED_HEADERS = [
    pytest.param(lambda fake: "Bearer", id="scheme-without-token"),
    pytest.param(lambda fake: "Bearer ", id="scheme-and-space-without-token"),
    pytest.param(lambda fake: f"Bearer  {fake.token()}", id="two-spaces"),
    pytest.param(lambda fake: f"Bearer {fake.token()} {fake.token()}", id="two-tokens"),
    # WSGI servers join repeated headers with ", ".
    pytest.param(
        lambda fake: f"Bearer {fake.token()}, Bearer {fake.token()}", id="duplicate-headers"
    ),
    pytest.param(
        lambda fake: f"Basic dXNlcjpwYXNz, Bearer {fake.token()}", id="duplicate-mixed-schemes"
    ),
    # RFC 6750 §2.1 b64token allows '=' only at the end: an inner '=' is not a Bearer credential.
    pytest.param(lambda fake: f"Bearer {padded_payload_segment(fake)}", id="inner-padding"),
    pytest.param(
        lambda fake: f"Bearer {fake.token()}{'A' * MAX_HEADER_BYTES}", id="oversized-header"
    ),
]


@pytest.mark.parametrize("build_header", MALFORMED_HEADERS)
def test_malformed_authorization_header_is_rejected_with_invalid_request(
    fake_entra, api_client, build_header
):
    # Given an Authorization header that is not exactly one Bearer credential
    authorization = build_header(fake_entra)

    # When it is sent
    response = get_me(api_client, authorization)

    # Then it is refused as a bad request before any key is needed
    assert_invalid_request(response, fake_entra, authorization)
    assert fake_entra.requests_to("all") == 0


def test_header_of_exactly_the_size_limit_is_parsed_as_a_token(fake_entra, api_client):
    # Given a header of exactly 16 KiB (only larger ones are refused unparsed)
    authorization = "Bearer " + "A" * (MAX_HEADER_BYTES - len("Bearer "))
    assert len(authorization) == MAX_HEADER_BYTES

    response = get_me(api_client, authorization)

    # Then its token is judged, and found not to be a JWT
    assert_invalid_token(response, fake_entra, authorization[7:], MalformedToken.detail)


def test_a_subclass_refusing_a_token_in_its_own_header_step_answers_invalid_token(fake_entra):
    # Given a subclass whose get_raw_token refuses with a token error of its own
    class StrictAuthentication(EntraJWTAuthentication):
        def get_raw_token(self, header: str) -> str | None:
            raise MalformedToken()

    request = Request(APIRequestFactory().get(ME, HTTP_AUTHORIZATION="Bearer abc"))

    # Then the request is refused with invalid_token, not a server error
    with pytest.raises(InvalidBearerToken):
        StrictAuthentication().authenticate(request)


def send_no_header(client: Any, token: str) -> Any:
    return client.get(ME)


def send_basic_credentials(client: Any, token: str) -> Any:
    return client.get(ME, HTTP_AUTHORIZATION="Basic dXNlcjpwYXNzd29yZA==")


def send_token_in_query_string(client: Any, token: str) -> Any:
    return client.get(ME, {"access_token": token})


def send_token_in_form_body(client: Any, token: str) -> Any:
    return client.post(ME, {"access_token": token}, format="multipart")


def send_token_in_urlencoded_body(client: Any, token: str) -> Any:
    return client.generic(
        "POST", ME, f"access_token={token}", content_type="application/x-www-form-urlencoded"
    )


@pytest.mark.parametrize(
    "send",
    [
        send_no_header,
        send_basic_credentials,
        send_token_in_query_string,
        send_token_in_form_body,
        send_token_in_urlencoded_body,
    ],
)
def test_request_without_bearer_header_gets_a_challenge_without_error(fake_entra, api_client, send):
    # Given a valid token that is not in an Authorization: Bearer header (docs/tokens.md)
    token = fake_entra.token()

    # When the request is sent
    response = send(api_client, token)

    # Then the caller is not authenticated, and the challenge names no error (RFC 6750 §3.1)
    assert_no_credentials_challenge(response, fake_entra, token)


# -- multi-tenant APIs ------------------------------------------------------------------------

VERSIONS = pytest.mark.parametrize("version", ["2.0", "1.0"])


@VERSIONS
def test_multi_tenant_api_accepts_an_allowed_tenant(configure, fake_entra, api_client, version):
    configure(TENANT_ID=MULTI_TENANT, ALLOWED_TENANTS=[TENANT_A])

    response = get_me(api_client, bearer(fake_entra.token(version=version, tenant=TENANT_A)))

    assert assert_accepted(response)["tid"] == TENANT_A


@VERSIONS
@pytest.mark.parametrize(
    ("claims", "detail"),
    [
        pytest.param({"tenant": TENANT_B}, TenantNotAllowed.detail, id="tenant-not-allowed"),
        pytest.param({"tenant": TENANT_A, "tid": TENANT_B}, UnknownIssuer.detail, id="tid-not-iss"),
        pytest.param({"tenant": TENANT_B, "tid": TENANT_A}, UnknownIssuer.detail, id="iss-not-tid"),
    ],
)
def test_multi_tenant_api_rejects_other_tenants_and_mismatched_issuers(
    configure, fake_entra, api_client, version, claims, detail
):
    configure(TENANT_ID=MULTI_TENANT, ALLOWED_TENANTS=[TENANT_A])
    token = fake_entra.token(version=version, **claims)

    response = get_me(api_client, bearer(token))

    assert_invalid_token(response, fake_entra, token, detail)


@VERSIONS
@pytest.mark.parametrize("tenant", [TENANT_A, TENANT_B, TENANT_OTHER])
def test_multi_tenant_api_with_any_tenant_opt_in_accepts_every_tenant(
    configure, fake_entra, api_client, version, tenant
):
    configure(TENANT_ID=MULTI_TENANT, ALLOWED_TENANTS=["*"])

    response = get_me(api_client, bearer(fake_entra.token(version=version, tenant=tenant)))

    assert assert_accepted(response)["tid"] == tenant


# -- client applications and guests -----------------------------------------------------------


@VERSIONS
def test_listed_client_app_is_accepted(configure, fake_entra, api_client, version):
    configure(ALLOWED_CLIENT_APPS=[ACCEPTED_CLIENT_APP])

    response = get_me(api_client, bearer(fake_entra.token(version=version)))

    assert assert_accepted(response)["app_id"] == ACCEPTED_CLIENT_APP


@VERSIONS
def test_unlisted_client_app_is_rejected(configure, fake_entra, api_client, version):
    configure(ALLOWED_CLIENT_APPS=[ACCEPTED_CLIENT_APP])
    client_claim = "azp" if version == "2.0" else "appid"
    token = fake_entra.token(version=version, **{client_claim: OTHER_CLIENT_APP_ID})

    response = get_me(api_client, bearer(token))

    assert_invalid_token(response, fake_entra, token, ClientAppNotAllowed.detail)


def test_v1_token_names_its_client_app_in_appid_even_beside_an_azp_claim(
    configure, fake_entra, api_client
):
    # Given a v1 token from an unlisted app (appid) that also carries a listed app as 'azp'
    configure(ALLOWED_CLIENT_APPS=[ACCEPTED_CLIENT_APP])
    token = fake_entra.token(version="1.0", appid=OTHER_CLIENT_APP_ID, azp=ACCEPTED_CLIENT_APP)

    # When it is presented
    response = get_me(api_client, bearer(token))

    # Then the calling app is the v1 'appid' (docs/tokens.md), which is not allowed
    assert_invalid_token(response, fake_entra, token, ClientAppNotAllowed.detail)


@pytest.mark.parametrize(
    "guest_claims",
    [
        pytest.param({"acct": 1}, id="acct-1"),
        pytest.param({"idp": f"https://sts.windows.net/{TENANT_OTHER}/"}, id="idp-other-tenant"),
        pytest.param({"idp": "live.com"}, id="idp-personal-account"),
    ],
)
@VERSIONS
def test_guest_user_is_rejected_when_guests_are_not_allowed(
    configure, fake_entra, api_client, guest_claims, version
):
    configure(ALLOW_GUESTS=False)
    token = fake_entra.token(version=version, **guest_claims)

    response = get_me(api_client, bearer(token))

    assert_invalid_token(response, fake_entra, token, GuestNotAllowed.detail)


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({}, id="member"),
        pytest.param({"acct": 0}, id="acct-0"),
        pytest.param({"idp": f"https://sts.windows.net/{TENANT_A}/"}, id="idp-home-v1-form"),
        pytest.param(
            {"idp": f"https://login.microsoftonline.com/{TENANT_A}/v2.0"}, id="idp-home-v2-form"
        ),
        pytest.param(
            {"app_only": True, "roles": ("Payments.Read.All",), "idp": "live.com"}, id="app-only"
        ),
    ],
)
def test_home_tenant_user_and_app_are_not_guests(configure, fake_entra, api_client, claims):
    configure(ALLOW_GUESTS=False)

    response = get_me(api_client, bearer(fake_entra.token(**claims)))

    assert_accepted(response)


# -- app-specific signing keys ----------------------------------------------------------------


def test_app_specific_signing_key_is_accepted_when_enabled(
    configure, fake_entra, api_client, fetched_urls
):
    # Given an app with its own signing key, published only with ?appid=<client id>
    configure(APP_SPECIFIC_KEYS=True)
    token = fake_entra.token(key=fake_entra.publish_app_key(CLIENT_ID))

    response = get_me(api_client, bearer(token))

    assert_accepted(response)
    jwks_urls = [url for url in fetched_urls if "/discovery/" in url]
    assert jwks_urls
    assert all(url.endswith(f"?appid={CLIENT_ID}") for url in jwks_urls)


def test_app_specific_signing_key_is_rejected_when_disabled(fake_entra, api_client):
    token = fake_entra.token(key=fake_entra.publish_app_key(CLIENT_ID))

    response = get_me(api_client, bearer(token))

    assert_invalid_token(response, fake_entra, token, UnknownSigningKey.detail)


# -- the principal ----------------------------------------------------------------------------

PRINCIPALS = [
    pytest.param(
        {"scopes": ("Payments.Write", "Payments.Read"), "roles": ("Payments.Admin",)},
        False,
        id="v2-delegated",
    ),
    pytest.param(
        {"version": "1.0", "scopes": ("Payments.Read",), "roles": ()}, False, id="v1-delegated"
    ),
    pytest.param(
        {"app_only": True, "roles": ("Payments.ReadWrite.All", "Payments.Read.All")},
        True,
        id="v2-app-only",
    ),
    pytest.param(
        {"version": "1.0", "app_only": True, "roles": ("Payments.Read.All",)},
        True,
        id="v1-app-only",
    ),
    pytest.param({"idtyp": "app"}, True, id="idtyp-app"),
]


@pytest.mark.parametrize(("options", "app_only"), PRINCIPALS)
def test_me_returns_the_principal_built_from_the_claims_without_database_queries(
    fake_entra, api_client, django_assert_num_queries, options, app_only
):
    # Given a valid token
    claims = fake_entra.claims(**options)
    token = signed(fake_entra, claims)

    # When it calls /api/me/
    with django_assert_num_queries(0):
        response = get_me(api_client, bearer(token))

    # Then the API sees the caller as the claims describe it, with no database row behind it
    assert assert_accepted(response) == {
        "tid": claims["tid"],
        "oid": claims["oid"],
        "app_id": claims["azp"] if claims["ver"] == "2.0" else claims["appid"],
        "scopes": sorted(claims.get("scp", "").split()),
        "roles": sorted(claims.get("roles", [])),
        "is_app_only": app_only,
        "token_version": claims["ver"],
        "name": claims.get("name"),
        "preferred_username": claims.get("preferred_username"),
    }
    assert response["X-Request-ID"]


def test_principal_ids_are_lower_case_guids(fake_entra, api_client):
    claims = fake_entra.claims()
    claims["oid"] = claims["oid"].upper()

    response = get_me(api_client, bearer(signed(fake_entra, claims)))

    assert assert_accepted(response)["oid"] == claims["oid"].lower()


# -- the validated-token cache ----------------------------------------------------------------


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_repeated_token_costs_no_second_signature_check(fake_entra, api_client, signature_checks):
    token = fake_entra.token()

    first = get_me(api_client, bearer(token))
    second = get_me(api_client, bearer(token))

    assert assert_accepted(first) == assert_accepted(second)
    assert signature_checks == [fake_entra.signing_key.kid]


def test_cached_token_is_not_trusted_past_exp(fake_entra, signature_checks):
    # Given a token validated once and cached
    clock = Clock(now_s())
    claims = fake_entra.claims(now=clock.now, lifetime_s=600)
    token = signed(fake_entra, claims)
    validator = TokenValidator(clock=clock)
    validator.validate(token)

    # Before exp the cache answers; no second signature check
    clock.now = claims["exp"] - 1
    validator.validate(token)
    assert len(signature_checks) == 1

    # From exp on the cache no longer answers; within the skew the token is checked again
    clock.now = claims["exp"]
    validator.validate(token)
    assert len(signature_checks) == 2

    # Beyond the skew the token is refused as expired
    clock.now = claims["exp"] + SKEW_S
    with pytest.raises(Expired):
        validator.validate(token)


def test_validated_token_cache_is_bounded(configure, fake_entra, signature_checks):
    configure(TOKEN_CACHE_MAX_ENTRIES=2)
    validator = TokenValidator()
    issued = [fake_entra.token() for _ in range(5)]

    for token in issued:
        validator.validate(token)

    assert len(validator.token_cache) == 2
    # The newest stay cached; the oldest went first.
    validator.validate(issued[-1])
    assert len(signature_checks) == len(issued)
    validator.validate(issued[0])
    assert len(signature_checks) == len(issued) + 1


def test_validated_token_cache_keeps_sha256_digests_never_tokens(fake_entra):
    validator = TokenValidator()
    token = fake_entra.token()

    validator.validate(token)

    entries = validator.token_cache._entries
    assert list(entries) == [hashlib.sha256(token.encode()).digest()]
    stored = repr(entries)
    assert token not in stored
    assert all(segment not in stored for segment in token.split("."))


# -- signing keys unavailable -----------------------------------------------------------------


def test_unavailable_signing_keys_answer_503_with_retry_after(fake_entra, api_client):
    # Given an Entra endpoint that is down before any key was fetched
    fake_entra.state.down = True
    token = fake_entra.token()

    # When a caller presents a valid token
    response = get_me(api_client, bearer(token))

    # Then the API owns the failure: 503 with Retry-After, never a 401 blaming the client
    assert response.status_code == 503, response.content
    assert int(response["Retry-After"]) > 0
    assert "WWW-Authenticate" not in response
    assert_safe_error_body(response, fake_entra, token)
    assert fake_entra.requests_to("metadata") >= 1


def test_a_token_checked_with_a_key_withdrawn_meanwhile_is_not_cached(fake_entra):
    # Given a key rotation that withdraws the signing key while a token is being checked...
    validator = get_validator()
    lookup = validator.find_key

    def find_key_then_rotation(trusted, kid):
        key = lookup(trusted, kid)
        fake_entra.rotate(keep_old=False)
        validator.entra.refresh_keys_if_unknown_kid(trusted, "a-kid-nobody-publishes")
        return key

    validator.find_key = find_key_then_rotation

    # ...the token is answered (it was valid when checked) but not remembered.
    assert validator.validate(fake_entra.token())["tid"]
    assert len(validator.token_cache) == 0
