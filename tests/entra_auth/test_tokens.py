"""The pure validation core (docs/tokens.md): no Django request, no HTTP, a fixed clock.

Each rule is a row of an accept/reject matrix that names the exact ``TokenError`` subclass and
its stable ``code``; property tests (hypothesis) cover the parser on arbitrary input, canonical
base64url, the ``{tenantid}`` issuer template, and a differential check against PyJWT.
"""

from __future__ import annotations

import base64
import datetime
import json
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from entra_auth.tokens import (
    BadSignature,
    ClientAppNotAllowed,
    Expired,
    GuestNotAllowed,
    InvalidClaim,
    IssuerIndex,
    MalformedToken,
    NotAnAccessToken,
    NotYetValid,
    ParsedToken,
    SigningKey,
    TenantNotAllowed,
    TokenError,
    TrustedIssuer,
    UnknownIssuer,
    UnknownSigningKey,
    UnsupportedTokenHeader,
    ValidationPolicy,
    WrongAudience,
    parse_token,
    signing_key_from_jwk,
    validate_access_token,
)
from tests.fake_entra import (
    CLIENT_APP_ID,
    CLIENT_ID,
    DROP,
    OTHER_CLIENT_APP_ID,
    TENANT_A,
    TENANT_B,
    USER_OID,
    apply_overrides,
    b64url,
    public_jwk,
    rsa_key,
    sign,
)

# A fixed clock (seconds since the epoch): no test depends on the time it runs.
NOW = 1_700_000_000
SKEW_S = 300
LIFETIME_S = 3600

AUTHORITY = "https://login.microsoftonline.com/"
V2_ISSUER = f"{AUTHORITY}{TENANT_A}/v2.0"
V1_ISSUER = f"https://sts.windows.net/{TENANT_A}/"
V2_TEMPLATE = f"{AUTHORITY}{{tenantid}}/v2.0"
V1_TEMPLATE = "https://sts.windows.net/{tenantid}/"
V2_JWKS = f"{AUTHORITY}common/discovery/v2.0/keys"
V1_JWKS = f"{AUTHORITY}common/discovery/keys"
DEV_TEMPLATE = "https://entra-dev.localhost/{tenantid}/v2.0"
DEV_JWKS = "entra-dev:local-key"
KID = "trusted-key"
KEY_BOUND_TO_TENANT_A = "key-bound-to-tenant-a"
KEY_BOUND_TO_TEMPLATE = "key-bound-to-template"
ATTACKER_KID = "attacker-key"
AUDIENCES = frozenset({CLIENT_ID, f"api://{CLIENT_ID}"})
B64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

TRUSTED_KEY = rsa_key(0)
ATTACKER_KEY = rsa_key(1)
PUBLISHED_KEYS: dict[tuple[str, str], SigningKey | None] = {
    (jwks_uri, kid): signing_key_from_jwk(public_jwk(TRUSTED_KEY, kid, **extra))
    for jwks_uri in (V1_JWKS, V2_JWKS, DEV_JWKS)
    for kid, extra in (
        (KID, {}),
        (KEY_BOUND_TO_TENANT_A, {"issuer": V2_ISSUER}),
        (KEY_BOUND_TO_TEMPLATE, {"issuer": V2_TEMPLATE}),
    )
}

ISSUER_SETS = {
    "single": (TrustedIssuer(V2_ISSUER, "2.0", V2_JWKS), TrustedIssuer(V1_ISSUER, "1.0", V1_JWKS)),
    "multi": (
        TrustedIssuer(V2_TEMPLATE, "2.0", V2_JWKS),
        TrustedIssuer(V1_TEMPLATE, "1.0", V1_JWKS),
    ),
    "dev": (TrustedIssuer(DEV_TEMPLATE, "2.0", DEV_JWKS, restrict_tenants=False),),
}
ISSUER_FORMS = {
    ("single", "2.0"): V2_TEMPLATE,
    ("single", "1.0"): V1_TEMPLATE,
    ("multi", "2.0"): V2_TEMPLATE,
    ("multi", "1.0"): V1_TEMPLATE,
    ("dev", "2.0"): DEV_TEMPLATE,
}

# Hypothesis runs a fixed sequence of examples: the suite gives the same answer on every run.
deterministic = hypothesis_settings(derandomize=True, deadline=None, max_examples=200)


def find_key(trusted: TrustedIssuer, kid: str) -> SigningKey | None:
    """The key lookup the core is given: a JWKS per ``jwks_uri``, no refresh."""
    return PUBLISHED_KEYS.get((trusted.jwks_uri, kid))


def make_policy(**overrides: Any) -> ValidationPolicy:
    values: dict[str, Any] = {
        "audiences": AUDIENCES,
        "accepted_versions": frozenset({"1.0", "2.0"}),
        "clock_skew_s": float(SKEW_S),
        "allowed_tenants": frozenset({TENANT_A}),
        "allowed_client_apps": None,
        "allow_guests": True,
    }
    values.update(overrides)
    return ValidationPolicy(**values)


def access_claims(
    *, version: str = "2.0", tenant: str = TENANT_A, issuers: str = "single", **overrides: Any
) -> dict[str, Any]:
    """A delegated access token's claims as Entra writes them; ``DROP`` removes a claim."""
    claims: dict[str, Any] = {
        "aud": CLIENT_ID if version == "2.0" else f"api://{CLIENT_ID}",
        "iss": ISSUER_FORMS[issuers, version].replace("{tenantid}", tenant),
        "iat": NOW - 60,
        "nbf": NOW - 60,
        "exp": NOW - 60 + LIFETIME_S,
        "tid": tenant,
        "oid": USER_OID,
        "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
        "ver": version,
        "scp": "Payments.Read",
        "name": "Ada Lovelace",
    }
    claims["azp" if version == "2.0" else "appid"] = CLIENT_APP_ID
    return apply_overrides(claims, overrides)


def app_only_claims(**overrides: Any) -> dict[str, Any]:
    return access_claims(
        **{"scp": DROP, "name": DROP, "idtyp": "app", "roles": ["Payments.Read.All"], **overrides}
    )


def signed(claims: dict[str, Any], *, key: rsa.RSAPrivateKey = TRUSTED_KEY, **headers: Any) -> str:
    return sign(claims, key, {"kid": KID, **headers})


def forge(header: dict[str, Any] | bytes, payload: dict[str, Any] | bytes) -> str:
    """A correctly signed JWS over exactly these header and payload bytes."""
    raw_header = header if isinstance(header, bytes) else json.dumps(header).encode()
    raw_payload = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    signing_input = f"{b64url(raw_header)}.{b64url(raw_payload)}"
    signature = TRUSTED_KEY.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url(signature)}"


HEADER = {"alg": "RS256", "kid": KID, "typ": "JWT"}
HEADER_SEGMENT = b64url(json.dumps(HEADER).encode())
PAYLOAD_SEGMENT = b64url(json.dumps(access_claims()).encode())


def validate(
    token: str, *, issuers: str = "single", now: float = NOW, **policy: Any
) -> dict[str, Any]:
    return validate_access_token(
        parse_token(token),
        issuers=IssuerIndex(ISSUER_SETS[issuers]),
        find_key=find_key,
        policy=make_policy(**policy),
        now=now,
    )


def assert_refused(call: Any, error: type[TokenError], code: str) -> TokenError:
    with pytest.raises(TokenError) as caught:
        call()
    assert type(caught.value) is error
    assert caught.value.code == code
    return caught.value


@dataclass(frozen=True)
class Case:
    """One token and one deployment: claims, JOSE header, signer, trusted issuers, policy."""

    claims: dict[str, Any] = field(default_factory=access_claims)
    header: dict[str, Any] = field(default_factory=dict)
    key: rsa.RSAPrivateKey = TRUSTED_KEY
    issuers: str = "single"
    policy: dict[str, Any] = field(default_factory=dict)
    # Serialize by hand: PyJWT refuses to encode some malformed claims (a non-string iss).
    forged: bool = False

    def token(self) -> str:
        if self.forged:
            return forge({**HEADER, **self.header}, self.claims)
        return signed(self.claims, key=self.key, **self.header)

    def validate(self) -> dict[str, Any]:
        return validate(self.token(), issuers=self.issuers, **self.policy)


# -- accepted tokens -----------------------------------------------------------------------


ACCEPTED = [
    pytest.param(Case(), id="v2-delegated-client-id-audience"),
    pytest.param(Case(access_claims(aud=f"api://{CLIENT_ID}")), id="v2-app-id-uri-audience"),
    pytest.param(Case(access_claims(version="1.0")), id="v1-delegated-app-id-uri-audience"),
    pytest.param(Case(access_claims(version="1.0", aud=CLIENT_ID)), id="v1-client-id-audience"),
    pytest.param(Case(app_only_claims()), id="v2-app-only-with-roles"),
    pytest.param(Case(app_only_claims(version="1.0")), id="v1-app-only-with-roles"),
    pytest.param(Case(access_claims(roles=["Payments.Admin"], scp=DROP)), id="roles-without-scp"),
    pytest.param(Case(access_claims(aud=["other", CLIENT_ID])), id="audience-list-naming-us"),
    pytest.param(Case(access_claims(nbf=DROP, iat=DROP)), id="no-nbf-no-iat"),
    pytest.param(Case(access_claims(exp=NOW + 0.5)), id="fractional-exp"),
    pytest.param(Case(access_claims(exp=NOW - SKEW_S + 1)), id="expired-but-within-skew"),
    pytest.param(Case(access_claims(nbf=NOW + SKEW_S)), id="nbf-ahead-within-skew"),
    pytest.param(Case(access_claims(iat=NOW + SKEW_S)), id="iat-ahead-within-skew"),
    pytest.param(Case(header={"typ": None}), id="no-typ-header"),
    pytest.param(Case(header={"typ": "jwt"}), id="typ-is-case-insensitive"),
    pytest.param(
        Case(header={"jku": "https://evil.example/keys", "x5u": "https://evil.example/cert"}),
        id="jku-and-x5u-are-ignored",
    ),
    pytest.param(
        Case(access_claims(issuers="multi"), issuers="multi"), id="multi-tenant-allowed-tenant"
    ),
    pytest.param(
        Case(access_claims(version="1.0", issuers="multi"), issuers="multi"),
        id="multi-tenant-v1-allowed-tenant",
    ),
    pytest.param(
        Case(
            access_claims(tenant=TENANT_B, issuers="multi"),
            issuers="multi",
            policy={"allowed_tenants": None},
        ),
        id="multi-tenant-any-tenant-opt-in",
    ),
    pytest.param(
        Case(access_claims(tenant=TENANT_B, issuers="dev"), issuers="dev"),
        id="unrestricted-template-issuer-ignores-allowed-tenants",
    ),
    pytest.param(Case(header={"kid": KEY_BOUND_TO_TENANT_A}), id="key-bound-to-the-token-issuer"),
    pytest.param(
        Case(
            access_claims(issuers="multi"), header={"kid": KEY_BOUND_TO_TEMPLATE}, issuers="multi"
        ),
        id="key-bound-to-the-issuer-template",
    ),
    pytest.param(
        Case(access_claims(version="1.0"), header={"kid": KEY_BOUND_TO_TEMPLATE}),
        id="v1-token-signed-by-key-labelled-in-v2-form",
    ),
    pytest.param(
        Case(policy={"allowed_client_apps": frozenset({CLIENT_APP_ID})}),
        id="allowed-client-app",
    ),
    pytest.param(
        Case(
            access_claims(version="1.0"), policy={"allowed_client_apps": frozenset({CLIENT_APP_ID})}
        ),
        id="allowed-client-app-from-v1-appid",
    ),
    pytest.param(Case(access_claims(acct=1)), id="guest-when-guests-allowed"),
    pytest.param(
        Case(access_claims(acct=0, idp=V2_ISSUER), policy={"allow_guests": False}),
        id="member-whose-idp-is-the-issuer",
    ),
    pytest.param(
        Case(access_claims(idp=V1_ISSUER), policy={"allow_guests": False}),
        id="member-whose-idp-is-the-home-tenant-v1-form",
    ),
    pytest.param(
        Case(app_only_claims(acct=1), policy={"allow_guests": False}),
        id="app-only-token-is-never-a-guest",
    ),
]


@pytest.mark.parametrize("case", ACCEPTED)
def test_token_satisfying_every_rule_is_accepted_and_its_claims_returned(case: Case) -> None:
    assert case.validate() == case.claims


# -- refused tokens, rule by rule ----------------------------------------------------------


def tampered_payload() -> str:
    header, _, signature = signed(access_claims()).split(".")
    other_payload = signed(access_claims(scp="Payments.Write")).split(".")[1]
    return f"{header}.{other_payload}.{signature}"


def signature_of_another_token() -> str:
    header, payload, _ = signed(access_claims()).split(".")
    other_signature = signed(access_claims(scp="Payments.Write")).split(".")[2]
    return f"{header}.{payload}.{other_signature}"


def c(**claims: Any) -> Case:
    return Case(access_claims(**claims))


REFUSED = [
    # The issuer: exact match for a single tenant, the template's exact replacement otherwise.
    pytest.param(
        c(iss="https://evil.example/" + TENANT_A + "/v2.0"),
        UnknownIssuer,
        "wrong_issuer",
        id="foreign-issuer",
    ),
    pytest.param(
        c(iss=V2_ISSUER.upper()), UnknownIssuer, "wrong_issuer", id="issuer-differs-in-case"
    ),
    pytest.param(
        c(iss=V2_ISSUER + "/"), UnknownIssuer, "wrong_issuer", id="issuer-with-extra-slash"
    ),
    pytest.param(c(iss=V1_ISSUER), UnknownIssuer, "wrong_issuer", id="v1-issuer-with-ver-2.0"),
    pytest.param(
        Case(access_claims(version="1.0", iss=V2_ISSUER)),
        UnknownIssuer,
        "wrong_issuer",
        id="v2-issuer-with-ver-1.0",
    ),
    pytest.param(
        Case(access_claims(tenant=TENANT_B)),
        UnknownIssuer,
        "wrong_issuer",
        id="single-tenant-api-other-tenant",
    ),
    pytest.param(
        c(tid=TENANT_B),
        UnknownIssuer,
        "wrong_issuer",
        id="tid-differs-from-the-exact-issuer-tenant",
    ),
    pytest.param(
        Case(access_claims(issuers="multi", tid=TENANT_B), issuers="multi"),
        UnknownIssuer,
        "wrong_issuer",
        id="tid-differs-from-the-template-issuer-tenant",
    ),
    pytest.param(
        Case(access_claims(issuers="dev"), issuers="single"),
        UnknownIssuer,
        "wrong_issuer",
        id="dev-issuer-not-trusted",
    ),
    # Multi-tenant: the tenant must be allowed.
    pytest.param(
        Case(access_claims(tenant=TENANT_B, issuers="multi"), issuers="multi"),
        TenantNotAllowed,
        "tenant_not_allowed",
        id="tenant-not-in-allowed-tenants",
    ),
    pytest.param(
        Case(
            access_claims(issuers="multi"), issuers="multi", policy={"allowed_tenants": frozenset()}
        ),
        TenantNotAllowed,
        "tenant_not_allowed",
        id="no-allowed-tenants-fails-closed",
    ),
    # The key: named by kid in the issuer's JWKS, never taken from the token.
    pytest.param(
        Case(header={"kid": "unpublished"}), UnknownSigningKey, "unknown_key", id="unknown-kid"
    ),
    pytest.param(
        Case(
            key=ATTACKER_KEY,
            header={"kid": ATTACKER_KID, "jwk": public_jwk(ATTACKER_KEY, ATTACKER_KID)},
        ),
        UnknownSigningKey,
        "unknown_key",
        id="embedded-jwk-is-not-trusted",
    ),
    pytest.param(
        Case(key=ATTACKER_KEY, header={"kid": ATTACKER_KID, "jku": "https://evil.example/keys"}),
        UnknownSigningKey,
        "unknown_key",
        id="jku-is-not-followed",
    ),
    pytest.param(
        Case(key=ATTACKER_KEY, header={"kid": ATTACKER_KID, "x5u": "https://evil.example/cert"}),
        UnknownSigningKey,
        "unknown_key",
        id="x5u-is-not-followed",
    ),
    pytest.param(
        Case(
            access_claims(tenant=TENANT_B, issuers="multi"),
            header={"kid": KEY_BOUND_TO_TENANT_A},
            issuers="multi",
            policy={"allowed_tenants": None},
        ),
        UnknownSigningKey,
        "unknown_key",
        id="key-bound-to-another-tenant",
    ),
    # The signature.
    pytest.param(
        Case(key=ATTACKER_KEY),
        BadSignature,
        "bad_signature",
        id="signed-by-another-key-under-a-trusted-kid",
    ),
    pytest.param(
        Case(key=ATTACKER_KEY, header={"jwk": public_jwk(ATTACKER_KEY, KID)}),
        BadSignature,
        "bad_signature",
        id="embedded-jwk-under-a-trusted-kid",
    ),
    # The audience.
    pytest.param(c(aud="api://someone-else"), WrongAudience, "wrong_audience", id="other-audience"),
    pytest.param(
        c(aud=CLIENT_ID.upper()), WrongAudience, "wrong_audience", id="audience-differs-in-case"
    ),
    pytest.param(
        c(aud=["someone-else"]), WrongAudience, "wrong_audience", id="audience-list-without-us"
    ),
    pytest.param(
        c(aud=[CLIENT_ID, 1]), WrongAudience, "wrong_audience", id="audience-list-with-a-number"
    ),
    pytest.param(c(aud=[[CLIENT_ID]]), WrongAudience, "wrong_audience", id="nested-audience-list"),
    pytest.param(c(aud=[]), WrongAudience, "wrong_audience", id="empty-audience-list"),
    pytest.param(c(aud=""), WrongAudience, "wrong_audience", id="empty-audience"),
    pytest.param(c(aud=7), WrongAudience, "wrong_audience", id="numeric-audience"),
    pytest.param(c(aud=DROP), WrongAudience, "wrong_audience", id="no-audience"),
    # The lifetime, with the clock skew.
    pytest.param(c(exp=NOW - SKEW_S - 1), Expired, "expired", id="expired-beyond-skew"),
    pytest.param(
        Case(access_claims(exp=NOW - 1), policy={"clock_skew_s": 0.0}),
        Expired,
        "expired",
        id="expired-without-skew",
    ),
    pytest.param(c(nbf=NOW + SKEW_S + 1), NotYetValid, "not_yet_valid", id="nbf-beyond-skew"),
    pytest.param(c(iat=NOW + SKEW_S + 1), NotYetValid, "not_yet_valid", id="iat-beyond-skew"),
    pytest.param(c(exp=DROP), InvalidClaim, "invalid_claim", id="exp-missing"),
    pytest.param(c(exp=str(NOW + LIFETIME_S)), InvalidClaim, "invalid_claim", id="exp-as-string"),
    pytest.param(c(exp=True), InvalidClaim, "invalid_claim", id="exp-as-bool"),
    pytest.param(c(exp=None), InvalidClaim, "invalid_claim", id="exp-null"),
    pytest.param(c(nbf=str(NOW)), InvalidClaim, "invalid_claim", id="nbf-as-string"),
    pytest.param(c(iat=str(NOW)), InvalidClaim, "invalid_claim", id="iat-as-string"),
    pytest.param(c(iat=False), InvalidClaim, "invalid_claim", id="iat-as-bool"),
    pytest.param(c(nbf=None), InvalidClaim, "invalid_claim", id="nbf-null"),
    # Identity claims and the token version.
    pytest.param(c(iss=DROP), InvalidClaim, "invalid_claim", id="iss-missing"),
    pytest.param(
        Case(access_claims(iss=42), forged=True),
        InvalidClaim,
        "invalid_claim",
        id="iss-not-a-string",
    ),
    pytest.param(c(tid=DROP), InvalidClaim, "invalid_claim", id="tid-missing"),
    pytest.param(
        c(tid="contoso.onmicrosoft.com"), InvalidClaim, "invalid_claim", id="tid-not-a-guid"
    ),
    pytest.param(c(tid=TENANT_A + "/v2.0"), InvalidClaim, "invalid_claim", id="tid-with-a-slash"),
    pytest.param(c(oid=DROP), InvalidClaim, "invalid_claim", id="oid-missing"),
    pytest.param(c(oid="ada@contoso.example"), InvalidClaim, "invalid_claim", id="oid-not-a-guid"),
    pytest.param(c(ver=DROP), InvalidClaim, "invalid_claim", id="ver-missing"),
    pytest.param(c(ver="3.0"), InvalidClaim, "invalid_claim", id="ver-unknown"),
    pytest.param(c(ver=2.0), InvalidClaim, "invalid_claim", id="ver-as-number"),
    pytest.param(
        Case(access_claims(version="1.0"), policy={"accepted_versions": frozenset({"2.0"})}),
        InvalidClaim,
        "invalid_claim",
        id="v1-when-only-v2-accepted",
    ),
    pytest.param(c(scp=["Payments.Read"]), InvalidClaim, "invalid_claim", id="scp-not-a-string"),
    pytest.param(c(roles="Payments.Admin"), InvalidClaim, "invalid_claim", id="roles-not-a-list"),
    pytest.param(
        c(roles=["Payments.Admin", 1]), InvalidClaim, "invalid_claim", id="roles-with-a-number"
    ),
    # An access token for an API, not an ID token.
    pytest.param(
        c(scp=DROP, nonce="n-0S6_WzA2Mj"), NotAnAccessToken, "not_access_token", id="id-token-shape"
    ),
    pytest.param(c(azp=DROP), NotAnAccessToken, "not_access_token", id="v2-without-azp"),
    pytest.param(c(azp=""), NotAnAccessToken, "not_access_token", id="v2-empty-azp"),
    pytest.param(
        Case(access_claims(version="1.0", appid=DROP, azp=CLIENT_APP_ID)),
        NotAnAccessToken,
        "not_access_token",
        id="v1-without-appid",
    ),
    pytest.param(c(scp=""), NotAnAccessToken, "not_access_token", id="empty-scp-no-roles"),
    pytest.param(
        c(scp="   ", roles=[]), NotAnAccessToken, "not_access_token", id="blank-scp-empty-roles"
    ),
    # Client application allow-list.
    pytest.param(
        Case(policy={"allowed_client_apps": frozenset({OTHER_CLIENT_APP_ID})}),
        ClientAppNotAllowed,
        "client_app_not_allowed",
        id="client-app-not-allowed",
    ),
    pytest.param(
        Case(policy={"allowed_client_apps": frozenset()}),
        ClientAppNotAllowed,
        "client_app_not_allowed",
        id="empty-client-app-list-fails-closed",
    ),
    # Guests, when refused.
    pytest.param(
        Case(access_claims(acct=1), policy={"allow_guests": False}),
        GuestNotAllowed,
        "guest_not_allowed",
        id="acct-1-guest",
    ),
    pytest.param(
        Case(
            access_claims(idp=f"https://sts.windows.net/{TENANT_B}/"),
            policy={"allow_guests": False},
        ),
        GuestNotAllowed,
        "guest_not_allowed",
        id="idp-of-another-tenant",
    ),
    pytest.param(
        Case(access_claims(idp="live.com"), policy={"allow_guests": False}),
        GuestNotAllowed,
        "guest_not_allowed",
        id="idp-microsoft-account",
    ),
    pytest.param(
        Case(access_claims(idp=["live.com"]), policy={"allow_guests": False}),
        GuestNotAllowed,
        "guest_not_allowed",
        id="idp-not-a-string",
    ),
]


@pytest.mark.parametrize(("case", "error", "code"), REFUSED)
def test_token_breaking_one_rule_is_refused_with_that_rules_error(
    case: Case, error: type[TokenError], code: str
) -> None:
    assert_refused(case.validate, error, code)


@pytest.mark.parametrize(
    ("token", "error", "code"),
    [
        pytest.param(tampered_payload, BadSignature, "bad_signature", id="payload-altered"),
        pytest.param(
            signature_of_another_token, BadSignature, "bad_signature", id="signature-swapped"
        ),
        pytest.param(
            lambda: f"{HEADER_SEGMENT}.{PAYLOAD_SEGMENT}.AA",
            BadSignature,
            "bad_signature",
            id="one-byte-signature",
        ),
    ],
)
def test_token_whose_signature_does_not_cover_its_content_is_refused(
    token: Any, error: type[TokenError], code: str
) -> None:
    assert_refused(lambda: validate(token()), error, code)


def test_token_is_expired_from_the_instant_exp_plus_skew_is_reached() -> None:
    """RFC 7519 §4.1.4: the current time MUST be before ``exp`` (here: ``exp`` + skew).

    PyJWT agrees (``exp <= now - leeway`` is expired).
    """
    token = signed(access_claims(exp=NOW - SKEW_S))
    assert_refused(lambda: validate(token), Expired, "expired")


def test_non_finite_exp_written_as_an_overflowing_number_is_refused() -> None:
    """``1e999`` decodes to ``inf`` in Python: a token that would never expire.

    ``NaN``/``Infinity`` literals are refused by the parser; an overflowing number must be too.
    """
    claims = json.dumps(access_claims(exp=0)).replace('"exp": 0', '"exp": 1e999').encode()
    token = forge(HEADER, claims)
    with pytest.raises(TokenError):
        validate(token)


# -- parsing: the JWS compact form, strictly ------------------------------------------------


def valid_token_with(*, header: str = HEADER_SEGMENT, payload: str = PAYLOAD_SEGMENT) -> str:
    return f"{header}.{payload}.{signed(access_claims()).split('.')[2]}"


NOT_CANONICAL_HEADER = (
    HEADER_SEGMENT[:-1] + B64URL_ALPHABET[B64URL_ALPHABET.index(HEADER_SEGMENT[-1]) | 1]
)

PARSE_REFUSED = [
    pytest.param("", MalformedToken, id="empty"),
    pytest.param("not-a-token", MalformedToken, id="one-part"),
    pytest.param(f"{HEADER_SEGMENT}.{PAYLOAD_SEGMENT}", MalformedToken, id="two-parts"),
    pytest.param(valid_token_with() + ".e30", MalformedToken, id="four-parts"),
    pytest.param(f"{HEADER_SEGMENT}.{PAYLOAD_SEGMENT}.", MalformedToken, id="empty-signature"),
    pytest.param(f"{HEADER_SEGMENT}..AAAA", MalformedToken, id="empty-payload"),
    pytest.param(valid_token_with(header=HEADER_SEGMENT + "="), MalformedToken, id="padded-header"),
    pytest.param(
        valid_token_with(header=HEADER_SEGMENT[:-1] + "+"),
        MalformedToken,
        id="standard-base64-alphabet",
    ),
    pytest.param(valid_token_with(header="AAAAA"), MalformedToken, id="impossible-length"),
    pytest.param(
        valid_token_with(header=NOT_CANONICAL_HEADER), MalformedToken, id="non-zero-trailing-bits"
    ),
    pytest.param(valid_token_with(header=" " + HEADER_SEGMENT), MalformedToken, id="whitespace"),
    pytest.param(valid_token_with() + "\u00e9", MalformedToken, id="non-ascii"),
    pytest.param(forge(b"not json", access_claims()), MalformedToken, id="header-not-json"),
    pytest.param(forge(b'["RS256"]', access_claims()), MalformedToken, id="header-not-an-object"),
    pytest.param(forge(b"\xff\xfe{}", access_claims()), MalformedToken, id="header-not-utf8"),
    pytest.param(forge(HEADER, b"[1, 2]"), MalformedToken, id="payload-not-an-object"),
    pytest.param(forge(HEADER, b'"claims"'), MalformedToken, id="payload-a-string"),
    pytest.param(
        forge(HEADER, b"[" * 100_000 + b"]" * 100_000), MalformedToken, id="payload-nested-too-deep"
    ),
    pytest.param(forge(HEADER, b'{"exp": NaN}'), MalformedToken, id="payload-nan"),
    pytest.param(forge(HEADER, b'{"exp": Infinity}'), MalformedToken, id="payload-infinity"),
    pytest.param(
        forge(HEADER, b'{"aud": "' + CLIENT_ID.encode() + b'", "aud": "evil"}'),
        MalformedToken,
        id="payload-duplicate-member",
    ),
    pytest.param(
        forge(b'{"alg": "RS256", "kid": "k", "alg": "none"}', access_claims()),
        MalformedToken,
        id="header-duplicate-member",
    ),
    pytest.param(forge({"alg": "RS256"}, access_claims()), MalformedToken, id="no-kid"),
    pytest.param(
        forge({"alg": "RS256", "kid": ""}, access_claims()), MalformedToken, id="empty-kid"
    ),
    pytest.param(
        forge({"alg": "RS256", "kid": 1}, access_claims()), MalformedToken, id="numeric-kid"
    ),
    pytest.param(forge({"kid": KID}, access_claims()), UnsupportedTokenHeader, id="no-alg"),
    pytest.param(
        forge({**HEADER, "alg": "none"}, access_claims()), UnsupportedTokenHeader, id="alg-none"
    ),
    pytest.param(
        forge({**HEADER, "alg": "HS256"}, access_claims()), UnsupportedTokenHeader, id="alg-hs256"
    ),
    pytest.param(
        forge({**HEADER, "alg": "RS384"}, access_claims()), UnsupportedTokenHeader, id="alg-rs384"
    ),
    pytest.param(
        forge({**HEADER, "alg": "PS256"}, access_claims()), UnsupportedTokenHeader, id="alg-ps256"
    ),
    pytest.param(
        forge({**HEADER, "alg": "rs256"}, access_claims()),
        UnsupportedTokenHeader,
        id="alg-lower-case",
    ),
    pytest.param(
        forge({**HEADER, "alg": ["RS256"]}, access_claims()), UnsupportedTokenHeader, id="alg-list"
    ),
    pytest.param(
        forge({**HEADER, "crit": ["exp"]}, access_claims()), UnsupportedTokenHeader, id="crit"
    ),
    pytest.param(
        forge({**HEADER, "crit": []}, access_claims()), UnsupportedTokenHeader, id="empty-crit"
    ),
    pytest.param(
        forge({**HEADER, "zip": "DEF"}, access_claims()), UnsupportedTokenHeader, id="zip"
    ),
    pytest.param(
        forge({**HEADER, "enc": "A256GCM"}, access_claims()), UnsupportedTokenHeader, id="enc"
    ),
    pytest.param(
        forge({**HEADER, "typ": "dpop+jwt"}, access_claims()),
        UnsupportedTokenHeader,
        id="typ-dpop-proof",
    ),
    pytest.param(
        forge({**HEADER, "typ": 1}, access_claims()), UnsupportedTokenHeader, id="typ-not-a-string"
    ),
]

PARSE_CODES = {MalformedToken: "malformed", UnsupportedTokenHeader: "unsupported_header"}


@pytest.mark.parametrize(("token", "error"), PARSE_REFUSED)
def test_token_not_in_strict_jws_compact_form_is_refused_before_validation(
    token: str, error: type[TokenError]
) -> None:
    assert_refused(lambda: parse_token(token), error, PARSE_CODES[error])


def test_parsed_token_keeps_the_signing_input_and_decoded_signature() -> None:
    token = signed(access_claims())
    header_segment, payload_segment, signature_segment = token.split(".")

    parsed = parse_token(token)

    assert parsed.signing_input == f"{header_segment}.{payload_segment}".encode()
    assert parsed.signature == base64.urlsafe_b64decode(signature_segment + "==")
    assert parsed.header == {"alg": "RS256", "kid": KID, "typ": "JWT"}
    assert parsed.claims == access_claims()


# -- property: the parser never fails with anything but TokenError ---------------------------


def parse_or_token_error(text: str) -> ParsedToken | None:
    try:
        return parse_token(text)
    except TokenError:
        return None


@deterministic
@given(st.text())
def test_parse_token_on_any_text_raises_only_token_error(text: str) -> None:
    parse_or_token_error(text)


@deterministic
@given(st.lists(st.text(alphabet=B64URL_ALPHABET + "=+/.", max_size=40), min_size=3, max_size=3))
def test_parse_token_on_any_base64ish_segments_raises_only_token_error(parts: list[str]) -> None:
    parse_or_token_error(".".join(parts))


@deterministic
@given(st.binary(), st.binary(), st.binary())
def test_parse_token_on_any_encoded_bytes_raises_only_token_error(
    header: bytes, payload: bytes, signature: bytes
) -> None:
    parse_or_token_error(f"{b64url(header)}.{b64url(payload)}.{b64url(signature)}")


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=16,
)


@deterministic
@given(JSON_VALUES, JSON_VALUES)
def test_parse_token_on_any_json_header_and_payload_raises_only_token_error(
    header: Any, payload: Any
) -> None:
    token = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}.AAAA"
    parse_or_token_error(token)


@deterministic
@given(st.text(min_size=1), st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=6))
def test_json_object_payload_under_a_valid_header_round_trips(
    kid: str, claims: dict[str, Any]
) -> None:
    header = {"alg": "RS256", "kid": kid}
    token = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}.AAAA"

    parsed = parse_token(token)

    assert parsed.header == header
    assert parsed.claims == claims


# -- property: canonical base64url (RFC 7515 §2, RFC 4648 §3.5) ------------------------------


def with_signature_segment(segment: str) -> str:
    return f"{HEADER_SEGMENT}.{PAYLOAD_SEGMENT}.{segment}"


@deterministic
@given(st.binary(min_size=1))
def test_canonical_unpadded_base64url_decodes_back_to_the_same_bytes(raw: bytes) -> None:
    assert parse_token(with_signature_segment(b64url(raw))).signature == raw


@deterministic
@given(st.binary(min_size=1), st.sampled_from(["=", "==", "standard"]))
def test_padded_base64url_is_refused(raw: bytes, padding_form: str) -> None:
    segment = b64url(raw)
    padded = segment + ("=" * (-len(segment) % 4) if padding_form == "standard" else padding_form)
    if padded == segment:
        padded += "===="
    assert_refused(lambda: parse_token(with_signature_segment(padded)), MalformedToken, "malformed")


@deterministic
@given(st.binary(min_size=1).filter(lambda raw: len(raw) % 3 != 0), st.integers(1, 15))
def test_base64url_with_non_zero_unused_trailing_bits_is_refused(raw: bytes, bits: int) -> None:
    segment = b64url(raw)
    unused_bits_mask = 0x0F if len(segment) % 4 == 2 else 0x03
    flipped = bits & unused_bits_mask
    if not flipped:
        flipped = 1
    last = B64URL_ALPHABET[B64URL_ALPHABET.index(segment[-1]) | flipped]
    altered = segment[:-1] + last
    # A lenient decoder maps both spellings to the same bytes: only canonical form is accepted.
    assert base64.urlsafe_b64decode(altered + "=" * (-len(altered) % 4)) == raw

    assert_refused(
        lambda: parse_token(with_signature_segment(altered)), MalformedToken, "malformed"
    )


# -- property: the {tenantid} issuer template --------------------------------------------------


TEMPLATE_ISSUER = TrustedIssuer(V2_TEMPLATE, "2.0", V2_JWKS)
TEMPLATE_PREFIX, _, TEMPLATE_SUFFIX = V2_TEMPLATE.partition("{tenantid}")


@deterministic
@given(st.text(), st.text(), st.text())
@example(tid=TENANT_A, before="", after="")
@example(tid=TENANT_A, before="", after="/")
@example(tid=TENANT_A, before="evil/", after="")
@example(tid=f"{TENANT_A}/v2.0", before="", after="")
@example(tid="", before=TENANT_A, after="")
@example(tid=TENANT_A[:8], before="", after=TENANT_A[8:])
def test_template_issuer_matches_only_its_exact_replacement_by_tid(
    tid: str, before: str, after: str
) -> None:
    index = IssuerIndex([TEMPLATE_ISSUER])
    iss = f"{TEMPLATE_PREFIX}{before}{tid}{after}{TEMPLATE_SUFFIX}"

    found = index.find(iss, tid)

    assert (found is TEMPLATE_ISSUER) == (before == "" and after == "")


@deterministic
@given(st.text(), st.text())
def test_template_issuer_never_matches_an_issuer_for_another_tid(iss_tid: str, tid: str) -> None:
    index = IssuerIndex([TEMPLATE_ISSUER])
    iss = V2_TEMPLATE.replace("{tenantid}", iss_tid)

    assert (index.find(iss, tid) is not None) == (iss_tid == tid)


def test_exact_issuer_is_found_whatever_the_tid_and_templates_only_by_replacement() -> None:
    exact = TrustedIssuer(V2_ISSUER, "2.0", V2_JWKS)
    index = IssuerIndex([TEMPLATE_ISSUER, exact])

    assert index.find(V2_ISSUER, TENANT_B) is exact
    assert index.find(V2_TEMPLATE.replace("{tenantid}", TENANT_B), TENANT_B) is TEMPLATE_ISSUER
    assert index.find(V2_TEMPLATE, TENANT_B) is None
    assert index.find(V2_TEMPLATE, "{tenantid}") is TEMPLATE_ISSUER
    assert not IssuerIndex([])
    assert IssuerIndex([TEMPLATE_ISSUER])


def test_literal_template_as_issuer_is_refused_because_tid_must_be_a_guid() -> None:
    token = signed(access_claims(issuers="multi", iss=V2_TEMPLATE, tid="{tenantid}"))
    assert_refused(lambda: validate(token, issuers="multi"), InvalidClaim, "invalid_claim")


# -- property: differential test against PyJWT ------------------------------------------------


class FrozenDatetime(datetime.datetime):
    """PyJWT reads ``datetime.now``; this one answers ``NOW`` so both judge the same instant."""

    @classmethod
    def now(cls, tz: datetime.tzinfo | None = None) -> FrozenDatetime:  # type: ignore[override]
        return cls.fromtimestamp(NOW, tz=tz)


AUDIENCE_CHOICES = st.sampled_from(
    [
        CLIENT_ID,
        f"api://{CLIENT_ID}",
        "api://someone-else",
        "",
        [CLIENT_ID],
        ["someone-else", f"api://{CLIENT_ID}"],
        ["someone-else"],
        [],
        DROP,
    ]
)
OFFSETS_S = st.integers(-2 * SKEW_S - 10, 2 * SKEW_S + 10)


def pyjwt_accepts(token: str, skew_s: int) -> bool:
    with mock.patch("jwt.api_jwt.datetime", FrozenDatetime):
        try:
            jwt.decode(
                token,
                TRUSTED_KEY.public_key(),
                algorithms=["RS256"],
                audience=sorted(AUDIENCES),
                leeway=skew_s,
                options={"require": ["exp"]},
            )
        except jwt.InvalidTokenError:
            return False
    return True


def we_accept(token: str, skew_s: int) -> bool:
    try:
        validate(token, clock_skew_s=float(skew_s))
    except (WrongAudience, Expired, NotYetValid, InvalidClaim):
        return False
    return True


@deterministic
@given(
    skew_s=st.integers(0, 2 * SKEW_S),
    exp=st.one_of(st.just(DROP), OFFSETS_S),
    nbf=st.one_of(st.just(DROP), OFFSETS_S),
    iat=st.one_of(st.just(DROP), OFFSETS_S),
    as_float=st.booleans(),
    aud=AUDIENCE_CHOICES,
)
@example(skew_s=SKEW_S, exp=-SKEW_S - 1, nbf=DROP, iat=DROP, as_float=False, aud=CLIENT_ID)
@example(skew_s=SKEW_S, exp=-SKEW_S + 1, nbf=SKEW_S, iat=SKEW_S, as_float=True, aud=CLIENT_ID)
@example(skew_s=0, exp=1, nbf=0, iat=0, as_float=False, aud=[CLIENT_ID])
def test_audience_and_lifetime_decisions_agree_with_pyjwt(
    skew_s: int, exp: Any, nbf: Any, iat: Any, as_float: bool, aud: Any
) -> None:
    """Where PyJWT is strict enough, it and we accept and refuse the same tokens.

    Generated: integral ``exp``/``nbf``/``iat`` around ``NOW`` (as ints or integral floats,
    each possibly absent), the clock skew (PyJWT's ``leeway``), and ``aud`` right, wrong, in a
    list, empty or absent. Outside this space the two deliberately differ:
    - a string ``exp``/``nbf``/``iat`` is refused here; PyJWT coerces it with ``int()``;
    - a bool ``exp`` is refused here; PyJWT reads ``True`` as 1;
    - a fractional time is compared exactly here; PyJWT truncates it with ``int()``;
    - the instant ``now == exp + skew`` is left to
      ``test_token_is_expired_from_the_instant_exp_plus_skew_is_reached``.
    """
    if exp is not DROP and exp == -skew_s:
        exp += 1

    def at(offset: Any) -> Any:
        return offset if offset is DROP else (float if as_float else int)(NOW + offset)

    token = signed(access_claims(exp=at(exp), nbf=at(nbf), iat=at(iat), aud=aud))

    assert we_accept(token, skew_s) == pyjwt_accepts(token, skew_s)


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"exp": str(NOW + LIFETIME_S)}, id="string-exp"),
        pytest.param({"nbf": str(NOW)}, id="string-nbf"),
        pytest.param({"iat": str(NOW)}, id="string-iat"),
        pytest.param({"exp": True, "iat": DROP, "nbf": DROP}, id="bool-exp"),
    ],
)
def test_time_claims_pyjwt_coerces_are_refused_here(claims: dict[str, Any]) -> None:
    """The deliberate difference (docs/tokens.md): times are JSON numbers, never strings or
    bools."""
    token = signed(access_claims(**claims))
    # ``True`` is 1 to PyJWT: long expired, so only a leeway of an epoch keeps it alive there.
    pyjwt_leeway = NOW if claims.get("exp") is True else SKEW_S
    assert pyjwt_accepts(token, pyjwt_leeway)

    assert_refused(lambda: validate(token), InvalidClaim, "invalid_claim")


# -- signing keys from a JWKS --------------------------------------------------------------


def test_rsa_signature_key_is_parsed_with_its_kid_and_issuer() -> None:
    key = signing_key_from_jwk(public_jwk(TRUSTED_KEY, KID, issuer=V2_TEMPLATE, alg="RS256"))

    assert key is not None
    assert key.kid == KID
    assert key.issuer == V2_TEMPLATE
    assert key.public_key.public_numbers() == TRUSTED_KEY.public_key().public_numbers()


def small_rsa_jwk() -> dict[str, Any]:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    return public_jwk(small, "small")


@pytest.mark.parametrize(
    "jwk",
    [
        pytest.param(public_jwk(TRUSTED_KEY, KID, kty="EC"), id="not-rsa"),
        pytest.param(public_jwk(TRUSTED_KEY, KID, use="enc"), id="encryption-key"),
        pytest.param(public_jwk(TRUSTED_KEY, KID, alg="RS512"), id="other-algorithm"),
        pytest.param(public_jwk(TRUSTED_KEY, ""), id="empty-kid"),
        pytest.param({**public_jwk(TRUSTED_KEY, KID), "kid": 7}, id="numeric-kid"),
        pytest.param(
            {k: v for k, v in public_jwk(TRUSTED_KEY, KID).items() if k != "n"}, id="no-modulus"
        ),
        pytest.param({**public_jwk(TRUSTED_KEY, KID), "n": "!!"}, id="modulus-not-base64url"),
        pytest.param({**public_jwk(TRUSTED_KEY, KID), "e": 65537}, id="exponent-not-a-string"),
        pytest.param({"kty": "RSA", "kid": KID, "x5c": ["MIIC..."]}, id="certificate-only"),
        pytest.param(small_rsa_jwk(), id="rsa-1024"),
    ],
)
def test_jwks_entry_unusable_for_rs256_is_skipped(jwk: dict[str, Any]) -> None:
    assert signing_key_from_jwk(jwk) is None


def test_non_string_key_issuer_is_ignored() -> None:
    key = signing_key_from_jwk(public_jwk(TRUSTED_KEY, KID, issuer=["https://evil.example/"]))

    assert key is not None
    assert key.issuer is None
