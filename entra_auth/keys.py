"""OpenID metadata and signing keys (JWKS): fetched, cached, refreshed, shared (docs/keys.md).

Two cache levels: the parsed key set in process memory (the per-request path reads only
this), and the raw documents in Django's cache framework, shared by every worker when the
cache is shared (Redis). Fetches are rare and bounded:
- a cold start fetches once (a lock in the shared cache; other workers wait for its result);
- an unknown ``kid`` triggers at most one refresh per ``KEY_REFRESH_MIN_INTERVAL`` across
  workers (a process holding keys fetched before it started may refresh once regardless),
  and the request that triggered it is checked against the refreshed keys;
- when the endpoint is down, the last good keys keep serving for up to ``KEY_MAX_STALE``;
  with no usable keys at all, ``KeysUnavailable`` (an HTTP 503) is raised.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from django.core.cache import caches
from django.dispatch import Signal

from . import observe
from .conf import entra_settings
from .tokens import IssuerIndex, SigningKey, TrustedIssuer, signing_key_from_jwk

logger = logging.getLogger("entra_auth.keys")

# When this process loaded entra_auth (django.setup() at worker start imports this module).
PROCESS_STARTED_AT = time.time()

# Sent when a refresh changes the published keys: tokens validated against a withdrawn key
# must not stay trusted in the validated-token cache.
key_set_changed = Signal()

CACHE_KEY_PREFIX = "entra_auth:keys:v1:"
# Workers waiting for another's cold-start fetch give up (503) after this long.
FETCH_WAIT_MAX_S = 10
FETCH_LOCK_POLL_S = 0.05
FETCH_LOCK_MARGIN_S = 5
METADATA_PATHS = {
    "2.0": "v2.0/.well-known/openid-configuration",
    "1.0": ".well-known/openid-configuration",
}
LOOPBACK_HOSTNAMES = frozenset({"localhost"})


class KeysUnavailable(Exception):
    """No usable signing keys: the API cannot judge any token (HTTP 503, never 401)."""


class KeyFetchError(Exception):
    """A metadata or JWKS document could not be fetched or was not acceptable.

    ``result`` says why in one word (``entra_auth.observe.key_fetched``): ``http_error``,
    ``timeout``, ``network_error``, ``refused_url`` or ``invalid`` (too large, not JSON, not
    the document expected).
    """

    def __init__(self, message: str, result: str = "invalid") -> None:
        super().__init__(message)
        self.result = result


def is_allowed_url(url: str) -> bool:
    """HTTPS only; plain HTTP is allowed for loopback hosts alone."""
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError:
        return False
    if not hostname:
        return False
    if parts.scheme == "https":
        return True
    if parts.scheme != "http":
        return False
    if hostname.lower() in LOOPBACK_HOSTNAMES:
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def fetch_json(url: str, session: requests.Session | None = None) -> dict[str, Any]:
    """GET a JSON object with timeouts, no redirects and a response-size cap."""
    if not is_allowed_url(url):
        raise KeyFetchError(
            f"refusing to fetch from a non-HTTPS, non-loopback URL: {url}", result="refused_url"
        )
    max_bytes = entra_settings.HTTP_MAX_RESPONSE_BYTES
    getter = session.get if session is not None else requests.get
    try:
        with getter(
            url,
            timeout=(entra_settings.HTTP_CONNECT_TIMEOUT, entra_settings.HTTP_READ_TIMEOUT),
            allow_redirects=False,
            stream=True,
            headers={"Accept": "application/json"},
        ) as response:
            if response.status_code != 200:
                raise KeyFetchError(
                    f"{url} answered HTTP {response.status_code}", result="http_error"
                )
            declared = response.headers.get("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                raise KeyFetchError(f"{url} answered more than {max_bytes} bytes")
            body = bytearray()
            for chunk in response.iter_content(chunk_size=64 * 1024):
                body += chunk
                if len(body) > max_bytes:
                    raise KeyFetchError(f"{url} answered more than {max_bytes} bytes")
    except requests.RequestException as exc:
        result = "timeout" if isinstance(exc, requests.Timeout) else "network_error"
        raise KeyFetchError(f"{url}: {type(exc).__name__}", result=result) from exc
    try:
        document = json.loads(bytes(body))
    except ValueError as exc:
        raise KeyFetchError(f"{url} did not answer JSON") from exc
    if not isinstance(document, dict):
        raise KeyFetchError(f"{url} did not answer a JSON object")
    return document


@dataclass(frozen=True, slots=True)
class KeySet:
    """Parsed issuers and keys from one set of fetched documents."""

    issuers: tuple[TrustedIssuer, ...]
    keys: dict[str, dict[str, SigningKey]]
    fetched_at: float

    def find(self, jwks_uri: str, kid: str) -> SigningKey | None:
        return self.keys.get(jwks_uri, {}).get(kid)


def key_set_from_document(document: dict[str, Any]) -> KeySet:
    """Build a ``KeySet`` from a cached document: issuers plus the raw JWKS per ``jwks_uri``."""
    issuers = tuple(
        TrustedIssuer(entry["issuer"], entry["version"], entry["jwks_uri"])
        for entry in document["issuers"]
    )
    keys: dict[str, dict[str, SigningKey]] = {}
    for jwks_uri, jwks in document["jwks"].items():
        parsed = (
            signing_key_from_jwk(jwk) for jwk in jwks.get("keys", []) if isinstance(jwk, dict)
        )
        keys[jwks_uri] = {key.kid: key for key in parsed if key is not None}
    return KeySet(issuers, keys, document["fetched_at"])


@dataclass(frozen=True, slots=True)
class EntraEndpoints:
    """The metadata documents to read for the configured tenant and token versions."""

    instance: str
    tenant_id: str
    client_id: str | None
    app_specific_keys: bool
    versions: tuple[str, ...]

    @classmethod
    def from_settings(cls) -> EntraEndpoints | None:
        tenant_id = entra_settings.TENANT_ID
        if not tenant_id:
            return None
        return cls(
            instance=entra_settings.instance_url,
            tenant_id=tenant_id,
            client_id=entra_settings.CLIENT_ID,
            app_specific_keys=bool(entra_settings.APP_SPECIFIC_KEYS),
            versions=tuple(sorted(entra_settings.ACCEPTED_TOKEN_VERSIONS, reverse=True)),
        )

    def metadata_url(self, version: str) -> str:
        return f"{self.instance}{self.tenant_id}/{METADATA_PATHS[version]}"

    def jwks_url(self, jwks_uri: str) -> str:
        """Apps with custom signing keys read them with ``?appid=<client id>``."""
        if not (self.app_specific_keys and self.client_id):
            return jwks_uri
        separator = "&" if urlsplit(jwks_uri).query else "?"
        return f"{jwks_uri}{separator}{urlencode({'appid': self.client_id})}"

    def fetch_budget_s(self) -> float:
        """The longest a full fetch may take: a metadata and a JWKS request per version."""
        per_request = entra_settings.HTTP_CONNECT_TIMEOUT + entra_settings.HTTP_READ_TIMEOUT
        return 2 * len(self.versions) * per_request

    @property
    def cache_key(self) -> str:
        fingerprint = hashlib.sha256(repr(self).encode()).hexdigest()[:24]
        return f"{CACHE_KEY_PREFIX}{fingerprint}"

    def fetch_document(
        self, session: requests.Session | None = None, *, now: float | None = None
    ) -> dict[str, Any]:
        """Read metadata for each token version, then each distinct JWKS once."""
        issuers = []
        jwks: dict[str, Any] = {}
        for version in self.versions:
            with observe.timed_key_fetch("metadata"):
                metadata = fetch_json(self.metadata_url(version), session)
                issuer = metadata.get("issuer")
                jwks_uri = metadata.get("jwks_uri")
                if not isinstance(issuer, str) or not isinstance(jwks_uri, str):
                    raise KeyFetchError(f"metadata for v{version} lacks issuer or jwks_uri")
            url = self.jwks_url(jwks_uri)
            if url not in jwks:
                with observe.timed_key_fetch("jwks"):
                    jwks[url] = fetch_json(url, session)
                    if not isinstance(jwks[url].get("keys"), list):
                        raise KeyFetchError(f"{url} is not a JWKS")
            issuers.append({"issuer": issuer, "version": version, "jwks_uri": url})
        fetched_at = time.time() if now is None else now
        return {"issuers": issuers, "jwks": jwks, "fetched_at": fetched_at}


@dataclass
class EntraKeyStore:
    """Entra metadata and keys for one configuration, cached in memory and in Django's cache.

    The shared cache holds the documents (``cache_key``), a small stamp of when they were
    fetched (``…:fetched_at``, read instead of the documents to notice another worker's
    refresh), the cold-start lock (``…:lock``) and the refresh window (``…:refresh``).
    """

    endpoints: EntraEndpoints
    clock: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    key_set: KeySet | None = None
    _retry_not_before: float = 0.0
    _refresh_window_closed_until: float = 0.0
    # When this worker started: keys fetched before it may be refreshed outside the window.
    started_at: float | None = None
    _refreshed_since_start: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _session: requests.Session = field(default_factory=requests.Session)

    def __post_init__(self) -> None:
        # Validators are built on first use; the process (this module) started earlier.
        if self.started_at is None:
            self.started_at = PROCESS_STARTED_AT

    @property
    def _cache(self) -> Any:
        return caches[entra_settings.CACHE_ALIAS]

    def _cache_call(self, method: str, *args: Any, default: Any = None, **kwargs: Any) -> Any:
        """A shared-cache operation whose failure degrades to ``default``: keys in memory serve."""
        try:
            return getattr(self._cache, method)(*args, **kwargs)
        except Exception:  # a cache outage must not stop authentication
            logger.warning("shared key cache %s failed", method, exc_info=True)
            return default

    def _is_fresh(self, fetched_at: float) -> bool:
        return self.clock() - fetched_at < entra_settings.KEY_CACHE_TTL

    def _usable(self, key_set: KeySet | None) -> bool:
        return (
            key_set is not None and self.clock() - key_set.fetched_at < entra_settings.KEY_MAX_STALE
        )

    def current(self) -> KeySet:
        """The key set for the per-request path: from memory unless it is due for a refresh."""
        key_set = self.key_set
        if key_set is not None and self._is_fresh(key_set.fetched_at):
            return key_set
        with self._lock:
            return self._load_or_fetch()

    def find_key(self, trusted: TrustedIssuer, kid: str) -> SigningKey | None:
        """The key named ``kid``; an unknown ``kid`` may trigger one rate-limited refresh."""
        key = self.current().find(trusted.jwks_uri, kid)
        if key is None:
            key = self.refresh_keys_if_unknown_kid(trusted, kid)
        return key

    def refresh_keys_if_unknown_kid(self, trusted: TrustedIssuer, kid: str) -> SigningKey | None:
        """Adopt keys another worker fetched, or fetch anew if the refresh window allows.

        A process whose keys predate its start may refresh once regardless; otherwise at most
        one refresh per ``KEY_REFRESH_MIN_INTERVAL`` across workers, so random ``kid``s cannot
        cause a flood.
        """
        with self._lock:
            key_set = self._adopt_newer_shared()
            if key_set is not None and (key := key_set.find(trusted.jwks_uri, kid)) is not None:
                return key
            now = self.clock()
            # A process holding keys fetched before it started (a deploy after a rotation)
            # may refresh once regardless of the window; keys fetched since then are as new
            # as any other worker's, so the shared window applies.
            exempt = not self._refreshed_since_start and (
                key_set is None or key_set.fetched_at < self.started_at
            )
            if not exempt and now < self._refresh_window_closed_until:
                return None
            interval = entra_settings.KEY_REFRESH_MIN_INTERVAL
            window_opened = self._cache_call(
                "add", f"{self.endpoints.cache_key}:refresh", 1, timeout=interval, default=True
            )
            self._refresh_window_closed_until = now + interval
            if not window_opened and not exempt:
                return None
            self._refreshed_since_start = True
            observe.key_refresh.send("unknown_kid")
            try:
                key_set = self._fetch_and_share()
            except KeyFetchError as exc:
                logger.warning("signing key refresh failed: %s", exc)
                return None
            return key_set.find(trusted.jwks_uri, kid)

    def _adopt_newer_shared(self) -> KeySet | None:
        """Take over documents another worker fetched after ours (checked by their stamp)."""
        key_set = self.key_set
        stamp = self._cache_call("get", f"{self.endpoints.cache_key}:fetched_at")
        if stamp is None or (key_set is not None and stamp <= key_set.fetched_at):
            return key_set
        document = self._read_shared()
        if document is not None and (
            key_set is None or document["fetched_at"] > key_set.fetched_at
        ):
            return self._adopt(document)
        return key_set

    def _read_shared(self) -> dict[str, Any] | None:
        document = self._cache_call("get", self.endpoints.cache_key)
        return document if isinstance(document, dict) else None

    def _adopt(self, document: dict[str, Any]) -> KeySet:
        previous = self.key_set
        if previous is None or previous.fetched_at != document["fetched_at"]:
            self.key_set = key_set_from_document(document)
            if previous is not None and previous.keys != self.key_set.keys:
                key_set_changed.send(sender=type(self), key_set=self.key_set)
        return self.key_set

    def _fetch_and_share(self) -> KeySet:
        document = self.endpoints.fetch_document(self._session, now=self.clock())
        timeout = entra_settings.KEY_MAX_STALE
        self._cache_call("set", self.endpoints.cache_key, document, timeout=timeout)
        self._cache_call(
            "set", f"{self.endpoints.cache_key}:fetched_at", document["fetched_at"], timeout=timeout
        )
        return self._adopt(document)

    def _load_or_fetch(self) -> KeySet:
        """Cold or due for refresh: shared cache first, then one fetch across workers."""
        key_set = self.key_set
        if key_set is not None and self._is_fresh(key_set.fetched_at):
            return key_set
        key_set = self._adopt_newer_shared()
        if key_set is not None and self._is_fresh(key_set.fetched_at):
            return key_set
        if self.clock() < self._retry_not_before:
            return self._stale_or_unavailable(key_set)
        lock_key = f"{self.endpoints.cache_key}:lock"
        lock_token = uuid.uuid4().hex
        # The lock outlives the slowest possible fetch, so no second fetch starts under it.
        lock_ttl = self.endpoints.fetch_budget_s() + FETCH_LOCK_MARGIN_S
        if not self._cache_call("add", lock_key, lock_token, timeout=lock_ttl, default=True):
            if self._usable(key_set):
                return key_set
            return self._wait_for_other_fetch(key_set, lock_key)
        try:
            # Another worker may have published between our look and taking the lock.
            key_set = self._adopt_newer_shared()
            if key_set is not None and self._is_fresh(key_set.fetched_at):
                return key_set
            observe.key_refresh.send("cold_start" if key_set is None else "scheduled")
            return self._fetch_and_share()
        except KeyFetchError as exc:
            logger.warning("signing key fetch failed: %s", exc)
            self._retry_not_before = self.clock() + entra_settings.KEYS_RETRY_AFTER
            return self._stale_or_unavailable(key_set)
        finally:
            # Release only our own lock (an expired one may have been taken since).
            if self._cache_call("get", lock_key) == lock_token:
                self._cache_call("delete", lock_key)

    def _wait_for_other_fetch(self, key_set: KeySet | None, lock_key: str) -> KeySet:
        """Another worker holds the cold-start lock: use its result when it is shared.

        Waiting ends when the keys are published, when the lock is released without them
        (that fetch failed), or after ``FETCH_WAIT_MAX_S``; then 503 for ``KEYS_RETRY_AFTER``.
        """
        deadline = self.monotonic() + FETCH_WAIT_MAX_S
        while self.monotonic() < deadline:
            newer = self._adopt_newer_shared()
            if newer is not None and newer is not key_set:
                return newer
            if self._cache_call("get", lock_key) is None:
                break
            self.sleep(FETCH_LOCK_POLL_S)
        newer = self._adopt_newer_shared()
        if newer is not None and newer is not key_set:
            return newer
        self._retry_not_before = self.clock() + entra_settings.KEYS_RETRY_AFTER
        return self._stale_or_unavailable(key_set)

    def _stale_or_unavailable(self, key_set: KeySet | None) -> KeySet:
        if self._usable(key_set):
            return key_set
        raise KeysUnavailable()


def all_issuers(key_sets: Iterable[KeySet]) -> IssuerIndex:
    return IssuerIndex(trusted for key_set in key_sets for trusted in key_set.issuers)
