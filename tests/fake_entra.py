"""A fake Microsoft Entra ID: a real HTTP server on 127.0.0.1 serving OpenID metadata and JWKS.

It mirrors Entra's documents (v2 and v1 metadata per tenant, the multi-tenant issuer as the
literal ``{tenantid}`` template, ``issuer`` fields on v2 keys), and lets tests rotate keys,
take the endpoint down, and count requests, so the real HTTP, caching and rotation code runs.
``FakeEntra.token()`` mints v1/v2, delegated/app-only access tokens signed by its keys.

For a browser's sign-in it also answers the v2.0 ``authorize`` and ``token`` endpoints of the
authorization code flow with PKCE (S256 only, codes used once, CORS as for a single-page
application): a user of tenant A signs in at once and gets a token with the scopes of this
API that were requested.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import secrets
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

TENANT_A = "6b1f0a52-1c1d-4d2e-9a43-0a1a2b3c4d5e"
TENANT_B = "0e9d8c7b-6a59-4838-8271-6f5e4d3c2b1a"
TENANT_OTHER = "f00dbabe-0000-4000-8000-000000000bad"
CLIENT_ID = "3c5a7e9b-1d2f-4a6b-8c0d-e1f2a3b4c5d6"
CLIENT_APP_ID = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d"
OTHER_CLIENT_APP_ID = "11112222-3333-4444-8555-666677778888"
USER_OID = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
MULTI_TENANT = "organizations"
TENANT_TEMPLATE = "{tenantid}"
KEY_BITS = 2048

_KEY_POOL: list[rsa.RSAPrivateKey] = []
_KEY_POOL_LOCK = threading.Lock()


def rsa_key(index: int) -> rsa.RSAPrivateKey:
    """Pooled RSA keys: generating one costs tens of milliseconds, so each is made once."""
    with _KEY_POOL_LOCK:
        while len(_KEY_POOL) <= index:
            _KEY_POOL.append(rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS))
        return _KEY_POOL[index]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwk(private_key: rsa.RSAPrivateKey, kid: str, **extra: Any) -> dict[str, Any]:
    numbers = private_key.public_key().public_numbers()

    def encode(value: int) -> str:
        return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))

    return {
        "kty": "RSA",
        "use": "sig",
        "kid": kid,
        "n": encode(numbers.n),
        "e": encode(numbers.e),
        **extra,
    }


def self_signed_certificate(private_key: rsa.RSAPrivateKey) -> str:
    """An ``x5c`` member (base64 DER) for ``private_key``: what an attacker can mint at will."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "keys.example.invalid")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(private_key, hashes.SHA256())
    )
    return base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode()


@dataclass
class PublishedKey:
    kid: str
    private_key: rsa.RSAPrivateKey
    # None: Entra's default ("<base>{tenantid}/v2.0" on v2 keys, none on v1 keys).
    issuer: str | None = None


@dataclass
class FakeEntraState:
    keys: list[PublishedKey] = field(default_factory=list)
    app_keys: dict[str, list[PublishedKey]] = field(default_factory=dict)
    down: bool = False
    requests: Counter = field(default_factory=Counter)
    # Set to make metadata or JWKS answers misbehave (e.g. {"status": 200, "body": b"..."}).
    override: dict[str, Any] | None = None
    response_delay_s: float = 0.0
    # The authorization code flow: codes not yet redeemed, and the sign-ins completed.
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    sign_ins: list[dict[str, Any]] = field(default_factory=list)


class FakeEntra:
    """Serves ``/<tenant>/v2.0/.well-known/openid-configuration`` and friends on loopback."""

    def __init__(self) -> None:
        self.state = FakeEntraState()
        self.lock = threading.Lock()
        self._key_index = 0
        handler = _handler_for(self)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> FakeEntra:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        with self.lock:
            self.state = FakeEntraState()
            self._key_index = 0
        self.rotate(keep_old=False)

    # -- keys ------------------------------------------------------------------------------
    def new_key(self, issuer: str | None = None) -> PublishedKey:
        with self.lock:
            index = self._key_index
            self._key_index += 1
        return PublishedKey(
            kid=f"fake-key-{index}-{uuid.uuid4().hex[:8]}",
            private_key=rsa_key(index),
            issuer=issuer,
        )

    def rotate(self, keep_old: bool = True) -> PublishedKey:
        """Publish a new signing key (first in the JWKS); the old ones stay when ``keep_old``."""
        key = self.new_key()
        with self.lock:
            self.state.keys = [key, *(self.state.keys if keep_old else [])]
        return key

    @property
    def signing_key(self) -> PublishedKey:
        return self.state.keys[0]

    def publish_app_key(self, app_id: str) -> PublishedKey:
        key = self.new_key()
        with self.lock:
            self.state.app_keys.setdefault(app_id, []).insert(0, key)
        return key

    # -- issuers ---------------------------------------------------------------------------
    def issuer(self, version: str, tenant: str) -> str:
        """The issuer Entra writes in tokens (and, with the template, in metadata)."""
        if version == "2.0":
            return f"{self.base_url}{tenant}/v2.0"
        return f"{self.base_url}sts/{tenant}/"

    def requests_to(self, kind: str) -> int:
        """Requests served so far: ``metadata``, ``jwks`` or ``all``."""
        counts = self.state.requests
        return sum(counts.values()) if kind == "all" else counts[kind]

    # -- tokens ----------------------------------------------------------------------------
    def claims(
        self,
        *,
        version: str = "2.0",
        tenant: str = TENANT_A,
        scopes: tuple[str, ...] = ("Payments.Read",),
        roles: tuple[str, ...] = (),
        app_only: bool = False,
        audience: str | None = None,
        lifetime_s: int = 3600,
        now: float | None = None,
        **overrides: Any,
    ) -> dict[str, Any]:
        issued = int(time.time() if now is None else now)
        oid = str(uuid.uuid5(uuid.UUID(tenant), "app" if app_only else "user"))
        claims: dict[str, Any] = {
            "aud": audience or (CLIENT_ID if version == "2.0" else f"api://{CLIENT_ID}"),
            "iss": self.issuer(version, tenant),
            "iat": issued,
            "nbf": issued,
            "exp": issued + lifetime_s,
            "tid": tenant,
            "oid": oid,
            "sub": oid,
            "ver": version,
            "uti": uuid.uuid4().hex,
        }
        claims["azp" if version == "2.0" else "appid"] = CLIENT_APP_ID
        if app_only:
            claims["idtyp"] = "app"
        else:
            claims["scp"] = " ".join(scopes)
            claims["name"] = "Ada Lovelace"
            claims["preferred_username"] = "ada@contoso.example"
        if roles or app_only:
            claims["roles"] = list(roles)
        return apply_overrides(claims, overrides)

    def token(
        self,
        *,
        key: PublishedKey | None = None,
        headers: dict[str, Any] | None = None,
        **claim_options: Any,
    ) -> str:
        """A signed access token; ``headers`` adds or replaces JOSE header members."""
        key = key or self.signing_key
        return sign(
            self.claims(**claim_options), key.private_key, {"kid": key.kid, **(headers or {})}
        )


# Pass as a claim override to remove the claim from the token.
_DROP = object()
DROP = _DROP


def apply_overrides(claims: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Set each override on ``claims``; ``DROP`` removes the claim instead."""
    for name, value in overrides.items():
        if value is DROP:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def sign(claims: dict[str, Any], private_key: rsa.RSAPrivateKey, headers: dict[str, Any]) -> str:
    """RS256 JWS compact serialization with exactly the given header members."""
    header = {"typ": "JWT", "alg": "RS256", **headers}
    return jwt.encode(claims, private_key, algorithm="RS256", headers=header)


def _handler_for(fake: FakeEntra) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            segments = [segment for segment in parts.path.split("/") if segment]
            query = parse_qs(parts.query)
            if segments[1:] == ["oauth2", "v2.0", "authorize"]:
                return self._authorize(segments[0], {k: v[0] for k, v in query.items()})
            kind, body = self._route(segments, query)
            with fake.lock:
                fake.state.requests[kind] += 1
                state = fake.state
            if state.response_delay_s:
                time.sleep(state.response_delay_s)
            if state.down:
                return self._send(503, b'{"error": "temporarily_unavailable"}')
            if state.override and state.override.get("kind") in (kind, "all"):
                return self._send(state.override.get("status", 200), state.override["body"])
            if body is None:
                return self._send(404, b'{"error": "not_found"}')
            return self._send(200, json.dumps(body).encode())

        def _route(self, segments: list[str], query: dict[str, list[str]]) -> tuple[str, Any]:
            if len(segments) < 2:
                return "other", None
            tenant, rest = segments[0], segments[1:]
            template_tenant = TENANT_TEMPLATE if tenant in ("organizations", "common") else tenant
            if rest == ["v2.0", ".well-known", "openid-configuration"]:
                return "metadata", {
                    "issuer": fake.issuer("2.0", template_tenant),
                    "jwks_uri": f"{fake.base_url}{tenant}/discovery/v2.0/keys",
                    "id_token_signing_alg_values_supported": ["RS256"],
                }
            if rest == [".well-known", "openid-configuration"]:
                return "metadata", {
                    "issuer": fake.issuer("1.0", template_tenant),
                    "jwks_uri": f"{fake.base_url}{tenant}/discovery/keys",
                }
            if rest in (["discovery", "v2.0", "keys"], ["discovery", "keys"]):
                v2 = rest[1] == "v2.0"
                app_id = query.get("appid", [None])[0]
                with fake.lock:
                    keys = list(fake.state.app_keys.get(app_id, [])) if app_id else []
                    keys += fake.state.keys
                default_issuer = fake.issuer("2.0", template_tenant) if v2 else None
                published = []
                for key in keys:
                    issuer = key.issuer or default_issuer
                    extra = {"issuer": issuer} if issuer else {}
                    published.append(public_jwk(key.private_key, key.kid, **extra))
                return "jwks", {"keys": published}
            return "other", None

        def _send(self, status: int, body: bytes, cors: bool = False) -> None:
            self.send_response(status)
            if cors:  # as Entra answers a single-page application's token request
                self.send_header("Access-Control-Allow-Origin", self.headers.get("Origin", "*"))
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _authorize(self, tenant: str, query: dict[str, str]) -> None:
            with fake.lock:
                fake.state.requests["authorize"] += 1
            required = ("client_id", "redirect_uri", "code_challenge", "state")
            if (
                query.get("response_type") != "code"
                or query.get("code_challenge_method") != "S256"
                or not all(query.get(name) for name in required)
            ):
                return self._send(400, b'{"error": "invalid_request"}')
            code = secrets.token_urlsafe(24)
            signed_in = TENANT_A if tenant in ("organizations", "common") else tenant
            with fake.lock:
                fake.state.codes[code] = {**query, "tenant": signed_in}
            separator = "&" if "?" in query["redirect_uri"] else "?"
            answer = urlencode({"code": code, "state": query["state"]})
            self.send_response(302)
            self.send_header("Location", f"{query['redirect_uri']}{separator}{answer}")
            self.end_headers()

        def do_OPTIONS(self) -> None:  # the browser's preflight of a token request
            self.send_response(204)
            self.send_header("Access-Control-Allow-Origin", self.headers.get("Origin", "*"))
            self.send_header("Access-Control-Allow-Methods", "POST")
            self.send_header("Access-Control-Allow-Headers", "Content-Type, X-Requested-With")
            self.end_headers()

        def do_POST(self) -> None:
            segments = [segment for segment in urlsplit(self.path).path.split("/") if segment]
            if segments[1:] != ["oauth2", "v2.0", "token"]:
                return self._send(404, b'{"error": "not_found"}')
            length = int(self.headers.get("Content-Length") or 0)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            with fake.lock:
                fake.state.requests["token"] += 1
                sign_in = fake.state.codes.pop(form.get("code", ""), None)
            verifier = form.get("code_verifier", "").encode()
            challenge = b64url(hashlib.sha256(verifier).digest())
            if (
                form.get("grant_type") != "authorization_code"
                or sign_in is None
                or form.get("client_id") != sign_in["client_id"]
                or form.get("redirect_uri") != sign_in["redirect_uri"]
                or challenge != sign_in["code_challenge"]
            ):
                return self._send(400, b'{"error": "invalid_grant"}', cors=True)
            requested = sign_in.get("scope", "").split()
            prefix = f"api://{CLIENT_ID}/"
            scopes = tuple(s.removeprefix(prefix) for s in requested if s.startswith(prefix))
            token = fake.token(tenant=sign_in["tenant"], scopes=scopes)
            with fake.lock:
                fake.state.sign_ins.append({**sign_in, "token": token})
            body = {
                "token_type": "Bearer",
                "scope": " ".join(requested),
                "expires_in": 3600,
                "access_token": token,
            }
            return self._send(200, json.dumps(body).encode(), cors=True)

    return Handler
