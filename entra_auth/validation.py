"""The validator this deployment uses: settings-derived policy, trusted key stores, and a
bounded in-process cache of validated tokens (docs/keys.md).

It is rebuilt when ``ENTRA_AUTH`` (or ``DEBUG``) changes, so tests can override settings.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from . import observe
from .conf import entra_settings
from .dev_issuer import DEV_JWKS_URI, DevKeyStore
from .keys import (
    EntraEndpoints,
    EntraKeyStore,
    KeySet,
    KeysUnavailable,
    all_issuers,
    key_set_changed,
)
from .tokens import (
    IssuerIndex,
    SigningKey,
    TrustedIssuer,
    ValidationPolicy,
    parse_token,
    validate_access_token,
)

ANY_TENANT = "*"


def policy_from_settings() -> ValidationPolicy:
    allowed_tenants = {tenant.lower() for tenant in entra_settings.ALLOWED_TENANTS}
    allowed_apps = entra_settings.ALLOWED_CLIENT_APPS
    return ValidationPolicy(
        audiences=entra_settings.audiences,
        accepted_versions=frozenset(entra_settings.ACCEPTED_TOKEN_VERSIONS),
        clock_skew_s=float(entra_settings.CLOCK_SKEW),
        allowed_tenants=None if ANY_TENANT in allowed_tenants else frozenset(allowed_tenants),
        allowed_client_apps=None if allowed_apps is None else frozenset(allowed_apps),
        allow_guests=bool(entra_settings.ALLOW_GUESTS),
    )


class ValidatedTokenCache:
    """Claims of recently validated tokens, keyed by SHA-256 of the token, never past ``exp``.

    Bounded: the oldest entry goes first when full (an ``OrderedDict``: evicting from the
    front of a plain dict rescans the holes earlier evictions left). The raw token is never
    stored.
    """

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[bytes, tuple[float, Mapping[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()
        # Bumped by clear(): a validation that began before a key change must not store.
        self.epoch = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, digest: bytes, now: float) -> Mapping[str, Any] | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if now >= entry[0]:
            with self._lock:
                self._entries.pop(digest, None)
            return None
        return entry[1]

    def put(self, digest: bytes, claims: Mapping[str, Any], expires_at: float, epoch: int) -> None:
        if self.max_entries <= 0:
            return
        with self._lock:
            if epoch != self.epoch:
                return
            while len(self._entries) >= self.max_entries:
                self._entries.popitem(last=False)
            self._entries[digest] = (expires_at, claims)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.epoch += 1


class TokenValidator:
    """Validates bearer tokens against every issuer this deployment trusts."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.generation = entra_settings.generation
        self.policy = policy_from_settings()
        endpoints = EntraEndpoints.from_settings()
        self.entra = EntraKeyStore(endpoints, clock=clock) if endpoints else None
        self.dev = DevKeyStore() if entra_settings.dev_issuer_trusted else None
        self.token_cache = ValidatedTokenCache(entra_settings.TOKEN_CACHE_MAX_ENTRIES)
        self._index: IssuerIndex | None = None
        # The key sets the index was built from, held so that identity comparison is sound
        # (an id() of a freed object can be reused by a new one).
        self._index_sources: tuple[KeySet, ...] = ()

    @property
    def _stores(self) -> list[Any]:
        return [store for store in (self.entra, self.dev) if store is not None]

    def issuers(self) -> IssuerIndex:
        """Trusted issuers from the current key sets; rebuilt only when a key set changes."""
        stores = self._stores
        if not stores:
            raise KeysUnavailable("no issuer is configured")
        key_sets = tuple(store.current() for store in stores)
        sources = self._index_sources
        if (
            self._index is None
            or len(sources) != len(key_sets)
            or any(old is not new for old, new in zip(sources, key_sets, strict=True))
        ):
            self._index, self._index_sources = all_issuers(key_sets), key_sets
        return self._index

    def _store_for(self, trusted: TrustedIssuer) -> Any:
        """The key store that publishes ``trusted``'s keys (None when it is not configured)."""
        return self.dev if trusted.jwks_uri == DEV_JWKS_URI else self.entra

    def find_key(self, trusted: TrustedIssuer, kid: str) -> SigningKey | None:
        store = self._store_for(trusted)
        return None if store is None else store.find_key(trusted, kid)

    def validate(
        self, token: str, on_cache_miss: Callable[[], None] | None = None
    ) -> Mapping[str, Any]:
        """Read-only claims of a valid token; raises ``TokenError`` or ``KeysUnavailable``.

        ``on_cache_miss`` runs first when the token has not been validated before.
        """
        now = self.clock()
        digest = hashlib.sha256(token.encode()).digest()
        claims = self.token_cache.get(digest, now)
        observe.token_cache.send(claims is not None)
        if claims is not None:
            return claims
        if on_cache_miss is not None:
            on_cache_miss()
        used: list[tuple[TrustedIssuer, str, SigningKey | None]] = []

        def find_key(trusted: TrustedIssuer, kid: str) -> SigningKey | None:
            key = self.find_key(trusted, kid)
            used.append((trusted, kid, key))
            return key

        parsed = parse_token(token)
        claims = MappingProxyType(
            validate_access_token(
                parsed, issuers=self.issuers(), find_key=find_key, policy=self.policy, now=now
            )
        )
        self._remember(digest, claims, *used[-1])
        return claims

    def _remember(
        self,
        digest: bytes,
        claims: Mapping[str, Any],
        trusted: TrustedIssuer,
        kid: str,
        key: SigningKey | None,
    ) -> None:
        """Cache the claims only while the key that signed them is still published.

        The epoch is read first: if a refresh withdraws the key after this check, its
        ``clear()`` bumps the epoch and the late ``put`` is dropped.
        """
        epoch = self.token_cache.epoch
        store = self._store_for(trusted)
        if store is not None and store.current().find(trusted.jwks_uri, kid) is key:
            self.token_cache.put(digest, claims, claims["exp"], epoch)


_validator: TokenValidator | None = None
_validator_lock = threading.Lock()


def get_validator() -> TokenValidator:
    """The process-wide validator for the current settings: a new one whenever a setting it
    reads changes (``entra_settings.generation``: ENTRA_AUTH, DEBUG, CACHES)."""
    global _validator
    validator = _validator
    if validator is None or validator.generation != entra_settings.generation:
        with _validator_lock:
            validator = _validator
            if validator is None or validator.generation != entra_settings.generation:
                validator = _validator = TokenValidator()
    return validator


def _drop_cached_tokens(sender: Any, **kwargs: Any) -> None:
    validator = _validator
    if validator is not None:
        validator.token_cache.clear()


key_set_changed.connect(_drop_cached_tokens)
