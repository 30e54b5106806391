"""The development token issuer: a local RSA key that signs Entra-shaped tokens.

It lets people try an API with no Entra tenant and no network (docs/development-issuer.md).
Its key lives in a file created on first use, by default in the user's cache directory. Its
public half is trusted only when ``ENTRA_AUTH["DEV_ISSUER"]`` is on and ``DEBUG`` is on (or
``DEV_ISSUER_WITHOUT_DEBUG`` is set explicitly), and a system check reports an error when it
would be trusted with ``DEBUG`` off.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .conf import default_dev_key_file, entra_settings
from .keys import KeySet
from .tokens import SigningKey, TrustedIssuer

DEV_ISSUER = "https://entra-dev.localhost/{tenantid}/v2.0"
DEV_JWKS_URI = "entra-dev:local-key"
DEV_CLIENT_ID = "00000000-0000-4000-8000-00000000d0e5"
DEV_CLIENT_APP_ID = "00000000-0000-4000-8000-00000000c11e"
# The audience of ``entra_dev_token --wrong-audience``: another API, which no setting names.
DEV_OTHER_AUDIENCE = "api://entra-dev.localhost/another-api"
DEV_KEY_BITS = 2048
DEFAULT_LIFETIME_S = 60 * 60
MAX_LIFETIME_S = 24 * 60 * 60
_DURATION = re.compile(r"(\d+)([smhd]?)")
_DURATION_UNITS_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def key_file_path() -> Path:
    """``ENTRA_AUTH["DEV_ISSUER_KEY_FILE"]``, else the user's cache directory (``conf``)."""
    configured = entra_settings.DEV_ISSUER_KEY_FILE
    if configured:
        return Path(configured)
    return default_dev_key_file()


def load_or_create_private_key(path: Path | None = None) -> rsa.RSAPrivateKey:
    """Read the development key, creating it (mode 0600, never overwritten) if absent."""
    path = path or key_file_path()
    if not path.exists():
        # Only the configured file's own folder is created, private to its owner.
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=DEV_KEY_BITS)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # created concurrently by another process: read theirs below
        else:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(pem)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{path} does not hold an RSA private key")
    return key


def key_id(public_key: rsa.RSAPublicKey) -> str:
    """RFC 7638 JWK thumbprint of the public key, base64url."""
    numbers = public_key.public_numbers()

    def b64(value: int) -> str:
        raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    canonical = f'{{"e":"{b64(numbers.e)}","kty":"RSA","n":"{b64(numbers.n)}"}}'
    return (
        base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()
    )


class DevKeyStore:
    """Trust of the development key, read from its file (never over the network)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.key_set: KeySet | None = None

    def current(self) -> KeySet:
        if self.key_set is None:
            with self._lock:
                if self.key_set is None:
                    self.key_set = self._load()
        return self.key_set

    def find_key(self, trusted: TrustedIssuer, kid: str) -> SigningKey | None:
        key = self.current().find(trusted.jwks_uri, kid)
        if key is None:
            # The key file may have been replaced since start-up: reading it again is local.
            with self._lock:
                self.key_set = self._load()
            key = self.key_set.find(trusted.jwks_uri, kid)
        return key

    @staticmethod
    def _load() -> KeySet:
        public_key = load_or_create_private_key().public_key()
        kid = key_id(public_key)
        trusted = TrustedIssuer(DEV_ISSUER, "2.0", DEV_JWKS_URI, restrict_tenants=False)
        return KeySet(
            issuers=(trusted,),
            keys={DEV_JWKS_URI: {kid: SigningKey(kid, public_key)}},
            fetched_at=time.time(),
        )


def parse_lifetime(text: str) -> int:
    """'90', '90s', '30m', '1h', '1d' → seconds (at most one day)."""
    match = _DURATION.fullmatch(text.strip().lower())
    if not match:
        raise ValueError("expected a duration such as 30m, 1h or 3600s")
    seconds = int(match.group(1)) * _DURATION_UNITS_S[match.group(2)]
    if not 0 < seconds <= MAX_LIFETIME_S:
        raise ValueError("the lifetime must be between 1 second and 1 day")
    return seconds


def mint_token(
    *,
    tenant_id: str,
    scopes: Iterable[str] = (),
    roles: Iterable[str] = (),
    app_only: bool = False,
    lifetime_s: int = DEFAULT_LIFETIME_S,
    object_id: str | None = None,
    now: float | None = None,
    auth_contexts: Iterable[str] = (),
    audience: str | None = None,
) -> str:
    """A v2 access token for this API signed by the development key.

    ``auth_contexts`` go into ``acrs``, as Entra writes the Conditional Access authentication
    contexts a user's sign-in satisfied (docs/permissions.md#step-up-authentication-context).
    ``now`` (the issue time) and ``audience`` (another API's) let clients test refusals.
    """
    tenant_id = str(uuid.UUID(tenant_id))
    private_key = load_or_create_private_key()
    issued_at = int(time.time() if now is None else now)
    oid = object_id or str(uuid.uuid5(uuid.UUID(tenant_id), "app" if app_only else "user"))
    claims: dict[str, Any] = {
        "aud": audience or entra_settings.CLIENT_ID or DEV_CLIENT_ID,
        "iss": DEV_ISSUER.replace("{tenantid}", tenant_id),
        "iat": issued_at,
        "nbf": issued_at,
        "exp": issued_at + lifetime_s,
        "azp": DEV_CLIENT_APP_ID,
        "azpacr": "0",
        "tid": tenant_id,
        "oid": oid,
        "sub": oid,
        "uti": uuid.uuid4().hex,
        "ver": "2.0",
    }
    if app_only:
        claims["idtyp"] = "app"
    else:
        claims["scp"] = " ".join(scopes)
        claims["name"] = "Development User"
        claims["preferred_username"] = f"dev.user@{tenant_id[:8]}.example"
    role_list = list(roles)
    if role_list or app_only:
        claims["roles"] = role_list
    context_list = list(dict.fromkeys(auth_contexts))
    if context_list:
        claims["acrs"] = context_list
    headers = {"kid": key_id(private_key.public_key()), "typ": "JWT"}
    return jwt.encode(claims, private_key, algorithm="RS256", headers=headers)
