"""Entra access token validation: a pure core, from token text to validated claims.

No Django request and no I/O here: the caller supplies the trusted issuers, a key lookup
(which may refresh keys), the validation policy and the current time. PyJWT does the JOSE
cryptography (RS256 verification, JWK parsing); this module parses strictly and applies the
Microsoft identity platform's rules for access tokens (docs/tokens.md).
"""

from __future__ import annotations

import binascii
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from jwt.algorithms import RSAAlgorithm
from jwt.exceptions import InvalidKeyError

ALLOWED_ALGORITHM = "RS256"
TENANT_ID_TEMPLATE = "{tenantid}"
MIN_RSA_KEY_BITS = 2048
# 9999-12-31T23:59:59Z, the largest time a token may name.
MAX_NUMERIC_DATE = 253_402_300_799
_GUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_B64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_B64URL_INDEX = {char: index for index, char in enumerate(_B64URL_ALPHABET)}
# Unused low bits of the last character, by segment length modulo 4 (RFC 4648 §3.5).
_TRAILING_BITS_MASK = {0: 0, 2: 0x0F, 3: 0x03}
_RS256 = RSAAlgorithm(RSAAlgorithm.SHA256)


class TokenError(Exception):
    """A token was refused. ``code`` is stable (audit, metrics); ``detail`` is for people."""

    code = "invalid_token"
    detail = "The access token is invalid."
    # RFC 6750 §3.1 error code for WWW-Authenticate.
    rfc6750_error = "invalid_token"

    def __init__(self, detail: str | None = None) -> None:
        if detail is not None:
            self.detail = detail
        super().__init__(self.detail)


class MalformedToken(TokenError):
    code = "malformed"
    detail = "The access token is not a well-formed signed JWT."


class UnsupportedTokenHeader(TokenError):
    code = "unsupported_header"
    detail = "The access token's header is not accepted (algorithm must be RS256, no 'crit')."


class UnknownIssuer(TokenError):
    code = "wrong_issuer"
    detail = "The access token was not issued by a trusted issuer."


class TenantNotAllowed(TokenError):
    code = "tenant_not_allowed"
    detail = "The access token's tenant is not allowed to call this API."


class UnknownSigningKey(TokenError):
    code = "unknown_key"
    detail = "The access token is signed with a key the issuer does not publish."


class BadSignature(TokenError):
    code = "bad_signature"
    detail = "The access token's signature is not valid."


class WrongAudience(TokenError):
    code = "wrong_audience"
    detail = "The access token was issued for another audience."


class Expired(TokenError):
    code = "expired"
    detail = "The access token has expired."


class NotYetValid(TokenError):
    code = "not_yet_valid"
    detail = "The access token is not valid yet."


class NotAnAccessToken(TokenError):
    code = "not_access_token"
    detail = "The token is not an access token for an API (ID tokens are not accepted)."


class InvalidClaim(TokenError):
    code = "invalid_claim"
    detail = "The access token carries a missing or malformed claim."


class ClientAppNotAllowed(TokenError):
    code = "client_app_not_allowed"
    detail = "The calling application is not allowed to use this API."


class GuestNotAllowed(TokenError):
    code = "guest_not_allowed"
    detail = "Guest users are not allowed to use this API."


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A public key from an issuer's JWKS, parsed once per key rotation."""

    kid: str
    public_key: Any
    # Entra's JWKS may bind a key to an issuer (with the ``{tenantid}`` template).
    issuer: str | None = None


@dataclass(frozen=True, slots=True)
class TrustedIssuer:
    """An issuer from OpenID metadata, exact or with the multi-tenant ``{tenantid}`` template."""

    issuer: str
    version: str
    jwks_uri: str
    # Entra multi-tenant issuers accept only ALLOWED_TENANTS; the dev issuer accepts any tenant.
    restrict_tenants: bool = True

    @property
    def is_template(self) -> bool:
        return TENANT_ID_TEMPLATE in self.issuer


@dataclass(frozen=True, slots=True)
class ValidationPolicy:
    """The settings-derived rules, computed once per configuration."""

    audiences: frozenset[str]
    accepted_versions: frozenset[str]
    clock_skew_s: float
    # None: any tenant (an explicit "*" opt-in); otherwise lower-case tenant ids.
    allowed_tenants: frozenset[str] | None
    # None: any client application.
    allowed_client_apps: frozenset[str] | None
    allow_guests: bool


@dataclass(frozen=True, slots=True)
class ParsedToken:
    """A structurally valid JWS compact token whose signature is not yet checked."""

    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes


class IssuerIndex:
    """Finds the trusted issuer of a token's ``iss`` in O(1) for exact issuers."""

    __slots__ = ("_exact", "_templates")

    def __init__(self, issuers: Iterable[TrustedIssuer]) -> None:
        self._exact: dict[str, TrustedIssuer] = {}
        self._templates: list[tuple[str, str, TrustedIssuer]] = []
        for trusted in issuers:
            if trusted.is_template:
                prefix, _, suffix = trusted.issuer.partition(TENANT_ID_TEMPLATE)
                self._templates.append((prefix, suffix, trusted))
            else:
                self._exact.setdefault(trusted.issuer, trusted)

    def __bool__(self) -> bool:
        return bool(self._exact or self._templates)

    def issuers_for_tenant(self, tid: str) -> set[str]:
        """Every trusted issuer as it reads for tenant ``tid``."""
        templates = {f"{prefix}{tid}{suffix}" for prefix, suffix, _ in self._templates}
        return templates | set(self._exact)

    def find(self, iss: str, tid: str) -> TrustedIssuer | None:
        """Exact match, or the template with ``{tenantid}`` replaced by ``tid`` (Entra rule)."""
        trusted = self._exact.get(iss)
        if trusted is not None:
            return trusted
        for prefix, suffix, candidate in self._templates:
            if iss == f"{prefix}{tid}{suffix}":
                return candidate
        return None


KeyLookup = Callable[[TrustedIssuer, str], "SigningKey | None"]


def _b64url_decode(segment: str) -> bytes:
    """Decode canonical unpadded base64url (RFC 7515 §2); anything else is malformed."""
    remainder = len(segment) % 4
    if remainder == 1 or not _B64URL.fullmatch(segment):
        raise MalformedToken()
    if _B64URL_INDEX[segment[-1]] & _TRAILING_BITS_MASK[remainder]:
        raise MalformedToken()
    try:
        return binascii.a2b_base64(
            # str.replace is several times faster than str.translate on a whole segment.
            segment.replace("-", "+").replace("_", "/") + "=" * (-len(segment) % 4),
            strict_mode=True,
        )
    except binascii.Error as exc:
        raise MalformedToken() from exc


def _reject_duplicate_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise MalformedToken("The access token has a duplicated JSON member.")
    return result


def _reject_constant(name: str) -> Any:
    raise MalformedToken()


_json_decoder = json.JSONDecoder(
    object_pairs_hook=_reject_duplicate_members, parse_constant=_reject_constant
)


def _json_object(segment: str) -> dict[str, Any]:
    try:
        value = _json_decoder.decode(_b64url_decode(segment).decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, MalformedToken):
            raise
        raise MalformedToken() from exc
    if not isinstance(value, dict):
        raise MalformedToken()
    return value


def parse_token(token: str) -> ParsedToken:
    """Split and decode a JWS compact token with strict base64url and JSON (RFC 7515 §7.1)."""
    if not token.isascii() or token.count(".") != 2:
        raise MalformedToken()
    header_segment, payload_segment, signature_segment = token.split(".")
    if not signature_segment:
        raise MalformedToken()
    header = _json_object(header_segment)
    alg = header.get("alg")
    if alg != ALLOWED_ALGORITHM:
        raise UnsupportedTokenHeader()
    # RFC 7515 §4.1.11: no extension is understood here, so any 'crit' must be refused.
    if "crit" in header or "zip" in header or "enc" in header:
        raise UnsupportedTokenHeader()
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.upper() != "JWT"):
        raise UnsupportedTokenHeader()
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise MalformedToken("The access token's header names no signing key ('kid').")
    claims = _json_object(payload_segment)
    signature = _b64url_decode(signature_segment)
    signing_input = f"{header_segment}.{payload_segment}".encode("ascii")
    return ParsedToken(header, claims, signing_input, signature)


def _is_numeric_date(value: Any) -> bool:
    """RFC 7519 NumericDate: a JSON number (not a boolean) from 1970 to 9999.

    The bounds refuse what would never expire: ``1e999`` decodes to infinity, and huge
    integers cannot even be compared as floats.
    """
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and 0 <= value <= MAX_NUMERIC_DATE
    )


def _guid_claim(claims: Mapping[str, Any], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not _GUID.fullmatch(value):
        raise InvalidClaim(f"The access token's '{name}' claim is missing or not a GUID.")
    return value.lower()


def _string_claim(claims: Mapping[str, Any], name: str) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidClaim(f"The access token's '{name}' claim is missing or malformed.")
    return value


def _check_lifetime(claims: Mapping[str, Any], clock_skew_s: float, now: float) -> None:
    """RFC 7519 §4.1.4-4.1.6 with leeway: ``exp`` required; ``nbf`` and ``iat`` not ahead."""
    exp = claims.get("exp")
    if not _is_numeric_date(exp):
        raise InvalidClaim("The access token's 'exp' claim is missing or not a number.")
    for name in ("nbf", "iat"):
        if name in claims and not _is_numeric_date(claims[name]):
            raise InvalidClaim(f"The access token's '{name}' claim is not a number.")
    # RFC 7519 §4.1.4: the current time must be before exp (with leeway).
    if now >= exp + clock_skew_s:
        raise Expired()
    if claims.get("nbf", now) > now + clock_skew_s or claims.get("iat", now) > now + clock_skew_s:
        raise NotYetValid()


def _check_audience(claims: Mapping[str, Any], audiences: frozenset[str]) -> None:
    """RFC 7519 §4.1.3: ``aud`` (a string, or a list of strings) names this API."""
    aud = claims.get("aud")
    values = [aud] if isinstance(aud, str) else aud
    if not isinstance(values, list) or not all(isinstance(value, str) for value in values):
        raise WrongAudience()
    if audiences.isdisjoint(values):
        raise WrongAudience()


def _check_access_token(claims: Mapping[str, Any], version: str) -> None:
    """An API access token names its client (``azp`` v2, ``appid`` v1) and grants scp or roles."""
    client_claim = "azp" if version == "2.0" else "appid"
    client = claims.get(client_claim)
    scp = claims.get("scp")
    roles = claims.get("roles")
    if not isinstance(client, str) or not client or (scp is None and roles is None):
        raise NotAnAccessToken()
    if scp is not None and not isinstance(scp, str):
        raise InvalidClaim("The access token's 'scp' claim is not a string.")
    if roles is not None and (
        not isinstance(roles, list) or not all(isinstance(role, str) for role in roles)
    ):
        raise InvalidClaim("The access token's 'roles' claim is not a list of strings.")
    if not (scp or "").strip() and not roles:
        raise NotAnAccessToken()


def client_app_id(claims: Mapping[str, Any]) -> str | None:
    """The calling application: ``azp`` in v2 tokens, ``appid`` in v1 tokens."""
    return claims.get("appid") if claims.get("ver") == "1.0" else claims.get("azp")


def is_app_only(claims: Mapping[str, Any]) -> bool:
    """App-only (client credentials) tokens carry no ``scp``, or ``idtyp`` is ``app``."""
    return not claims.get("scp") or claims.get("idtyp") == "app"


def _is_guest(claims: Mapping[str, Any], tid: str) -> bool:
    """B2B guest: ``acct`` is 1, or ``idp`` names another tenant or identity provider.

    The home tenant under its other issuer form (``sts.windows.net/<tid>/`` beside a v2
    issuer) is not a guest, so ``idp`` counts as foreign only when it does not carry ``tid``.
    """
    if claims.get("acct") == 1:
        return True
    idp = claims.get("idp")
    if idp is None or idp == claims.get("iss"):
        return False
    return not isinstance(idp, str) or tid not in idp.lower().split("/")


def _check_key_issuer(key: SigningKey, iss: str, tid: str, issuers: IssuerIndex) -> None:
    """Entra binds keys to an issuer (``{tenantid}`` = the token's ``tid``).

    As Microsoft.IdentityModel's signing-key issuer check does, the key's issuer must equal
    the token's ``iss`` or a trusted metadata issuer for that tenant: a v1 token
    (``sts.windows.net``) signed by a key that the v2 key set labels in v2 form is accepted.
    """
    if key.issuer is None:
        return
    expected = key.issuer.replace(TENANT_ID_TEMPLATE, tid)
    if expected != iss and expected not in issuers.issuers_for_tenant(tid):
        raise UnknownSigningKey("The access token's issuer does not match its signing key.")


def verify_signature(parsed: ParsedToken, key: SigningKey) -> None:
    """RS256 verification of the JWS signing input (RFC 7518 §3.3)."""
    if not _RS256.verify(parsed.signing_input, key.public_key, parsed.signature):
        raise BadSignature()


def validate_access_token(
    parsed: ParsedToken,
    *,
    issuers: IssuerIndex,
    find_key: KeyLookup,
    policy: ValidationPolicy,
    now: float,
) -> dict[str, Any]:
    """Apply every rule of docs/tokens.md to a parsed token: its claims, or ``TokenError``."""
    claims = parsed.claims
    iss = _string_claim(claims, "iss")
    tid = _guid_claim(claims, "tid")
    _guid_claim(claims, "oid")
    version = claims.get("ver")
    if not isinstance(version, str) or version not in policy.accepted_versions:
        raise InvalidClaim("The access token's version ('ver') is not accepted.")

    trusted = issuers.find(iss, tid)
    if trusted is None or trusted.version != version:
        raise UnknownIssuer()

    key = find_key(trusted, parsed.header["kid"])
    if key is None:
        raise UnknownSigningKey()
    verify_signature(parsed, key)
    # Tenant rules only after the signature: unsigned probes learn nothing about them.
    if tid not in iss.lower().split("/"):
        raise UnknownIssuer("The access token's tenant does not match its issuer.")
    if (
        trusted.restrict_tenants
        and trusted.is_template
        and policy.allowed_tenants is not None
        and tid not in policy.allowed_tenants
    ):
        raise TenantNotAllowed()
    _check_key_issuer(key, iss, tid, issuers)

    _check_audience(claims, policy.audiences)
    _check_lifetime(claims, policy.clock_skew_s, now)
    _check_access_token(claims, version)
    if policy.allowed_client_apps is not None and (
        client_app_id(claims) not in policy.allowed_client_apps
    ):
        raise ClientAppNotAllowed()
    if not policy.allow_guests and not is_app_only(claims) and _is_guest(claims, tid):
        raise GuestNotAllowed()
    return claims


def signing_key_from_jwk(jwk: Mapping[str, Any]) -> SigningKey | None:
    """Parse one JWKS entry usable for RS256 signature checks; anything else is skipped.

    Only ``n``/``e`` are read: certificates (``x5c``) and URLs in a key are never followed. A
    key whose ``key_ops`` (RFC 7517 §4.3) does not list ``verify`` is not for verifying.
    """
    kid = jwk.get("kid")
    key_ops = jwk.get("key_ops", ("verify",))
    if (
        jwk.get("kty") != "RSA"
        or not isinstance(kid, str)
        or not kid
        or jwk.get("use", "sig") != "sig"
        or jwk.get("alg", ALLOWED_ALGORITHM) != ALLOWED_ALGORITHM
        or not isinstance(key_ops, (list, tuple))
        or "verify" not in key_ops
    ):
        return None
    try:
        public_key = RSAAlgorithm.from_jwk({"kty": "RSA", "n": jwk["n"], "e": jwk["e"]})
    except (InvalidKeyError, KeyError, TypeError, ValueError):
        return None
    if getattr(public_key, "key_size", 0) < MIN_RSA_KEY_BITS:
        return None
    issuer = jwk.get("issuer")
    return SigningKey(kid, public_key, issuer if isinstance(issuer, str) else None)
