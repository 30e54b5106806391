"""The ``ENTRA_AUTH`` settings namespace: defaults, user overrides, lazy reload.

Modelled on DRF's ``api_settings``: attribute access, values read when first used and
re-read whenever Django's ``setting_changed`` signal fires (``override_settings`` in tests).
Environment variables are read by the project's settings module, never here. Every key, its
type and default: docs/configuration.md; ``manage.py check`` refuses unknown keys and values
of the wrong type (``entra_auth.checks``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

SETTINGS_NAME = "ENTRA_AUTH"

DEFAULT_INSTANCE = "https://login.microsoftonline.com/"
MICROSOFT_DEFAULT_CLOCK_SKEW_S = 300
KEY_CACHE_TTL_S = 24 * 60 * 60
KEY_REFRESH_MIN_INTERVAL_S = 5 * 60
KEY_MAX_STALE_S = 3 * 24 * 60 * 60
KEYS_RETRY_AFTER_S = 30
HTTP_CONNECT_TIMEOUT_S = 3.05
HTTP_READ_TIMEOUT_S = 5.0
HTTP_MAX_RESPONSE_BYTES = 1024 * 1024
TOKEN_CACHE_MAX_ENTRIES = 10_000
API_RATE_LIMIT_BATCH = 5
MAX_AUTHORIZATION_HEADER_BYTES = 16 * 1024
MAX_REQUEST_BODY_BYTES = 64 * 1024
AUDIT_COALESCE_WINDOW_S = 60

DEFAULTS: dict[str, Any] = {
    # Where tokens come from.
    "INSTANCE": DEFAULT_INSTANCE,
    "TENANT_ID": None,
    "CLIENT_ID": None,
    # Accepted ``aud`` values; None means ``<client id>`` and ``api://<client id>``.
    "AUDIENCES": None,
    # Tenants a multi-tenant API accepts; ``["*"]`` accepts any (a system-check warning).
    "ALLOWED_TENANTS": [],
    "ACCEPTED_TOKEN_VERSIONS": ["1.0", "2.0"],
    "CLOCK_SKEW": MICROSOFT_DEFAULT_CLOCK_SKEW_S,
    # Client applications (``azp``/``appid``) allowed to call; None allows any.
    "ALLOWED_CLIENT_APPS": None,
    "ALLOW_GUESTS": True,
    "APP_SPECIFIC_KEYS": False,
    # Development issuer (never trusted unless DEBUG is on or the override is set).
    "DEV_ISSUER": False,
    "DEV_ISSUER_WITHOUT_DEBUG": False,
    "DEV_ISSUER_KEY_FILE": None,
    # Metadata and signing keys.
    "CACHE_ALIAS": "default",
    "KEY_CACHE_TTL": KEY_CACHE_TTL_S,
    "KEY_REFRESH_MIN_INTERVAL": KEY_REFRESH_MIN_INTERVAL_S,
    "KEY_MAX_STALE": KEY_MAX_STALE_S,
    "KEYS_RETRY_AFTER": KEYS_RETRY_AFTER_S,
    "HTTP_CONNECT_TIMEOUT": HTTP_CONNECT_TIMEOUT_S,
    "HTTP_READ_TIMEOUT": HTTP_READ_TIMEOUT_S,
    "HTTP_MAX_RESPONSE_BYTES": HTTP_MAX_RESPONSE_BYTES,
    # Request handling.
    "TOKEN_CACHE_MAX_ENTRIES": TOKEN_CACHE_MAX_ENTRIES,
    "MAX_AUTHORIZATION_HEADER_BYTES": MAX_AUTHORIZATION_HEADER_BYTES,
    # Larger bodies are refused with 413: before they are read by
    # entra_auth.http.body_limit.RequestBodyLimitMiddleware, and by BoundedJSONParser.
    "MAX_REQUEST_BODY_BYTES": MAX_REQUEST_BODY_BYTES,
    "REALM": "api",
    # Use an incoming X-Request-ID (only behind a proxy that sets or strips it).
    "TRUST_REQUEST_ID_HEADER": False,
    # Proxies (addresses or CIDR networks) whose X-Forwarded-For is believed.
    "TRUSTED_PROXIES": [],
    # Rate limits (django-ratelimit syntax, e.g. "300/m"): per authenticated caller, and for
    # failed authentications per client IP. None turns one off.
    "API_RATE_LIMIT": "300/m",
    "AUTH_FAILURE_RATE_LIMIT": "30/m",
    # Failed Django admin logins per client IP and per username
    # (entra_auth.http.admin_login.AdminLoginRateLimitMiddleware). None turns it off.
    "ADMIN_LOGIN_RATE_LIMIT": "5/m",
    # Per-caller requests a process counts in memory before adding them to the shared cache
    # (at most, and at most a twentieth of the limit): 1 writes every request (exact, slower).
    "API_RATE_LIMIT_BATCH": API_RATE_LIMIT_BATCH,
    # On a cache outage rate limits let requests through (authentication still applies).
    "RATE_LIMIT_FAIL_OPEN": True,
    # Paths whose error answers are always JSON (JsonErrorMiddleware).
    "API_PATH_PREFIXES": ["/api/", "/health/"],
    # Audit: refusals of one kind from one client IP within this many seconds share a row
    # (its ``count`` grows); 0 writes a row per refusal.
    "AUDIT_COALESCE_WINDOW": AUDIT_COALESCE_WINDOW_S,
    # The bearer token Prometheus sends to GET /metrics (entra_auth.metrics, the metrics
    # extra); None or "" keeps the metrics off and the route answers 404.
    "METRICS_TOKEN": None,
}


def _is_text(value: Any) -> bool:
    return isinstance(value, str)


def _is_optional_text(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _is_flag(value: Any) -> bool:
    return isinstance(value, bool)


def _is_texts(value: Any) -> bool:
    # A bare string is a sequence too, and would be read one character at a time.
    return isinstance(value, (list, tuple, set, frozenset)) and all(
        isinstance(item, str) for item in value
    )


def _is_optional_texts(value: Any) -> bool:
    return value is None or _is_texts(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_seconds(value: Any) -> bool:
    return _is_number(value) and value >= 0


def _is_positive_seconds(value: Any) -> bool:
    return _is_seconds(value) and value > 0


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_optional_path(value: Any) -> bool:
    return value is None or isinstance(value, (str, os.PathLike))


# What each key accepts: a description for the check's message, and the test it must pass.
SETTING_TYPES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "INSTANCE": ("a URL string", _is_text),
    "TENANT_ID": ("a string or None", _is_optional_text),
    "CLIENT_ID": ("a string or None", _is_optional_text),
    "AUDIENCES": ("a list of strings or None", _is_optional_texts),
    "ALLOWED_TENANTS": ("a list of strings", _is_texts),
    "ACCEPTED_TOKEN_VERSIONS": ("a list of strings", _is_texts),
    # Its range is check entra_auth.E010's.
    "CLOCK_SKEW": ("a number of seconds", _is_number),
    "ALLOWED_CLIENT_APPS": ("a list of strings or None", _is_optional_texts),
    "ALLOW_GUESTS": ("True or False", _is_flag),
    "APP_SPECIFIC_KEYS": ("True or False", _is_flag),
    "DEV_ISSUER": ("True or False", _is_flag),
    "DEV_ISSUER_WITHOUT_DEBUG": ("True or False", _is_flag),
    "DEV_ISSUER_KEY_FILE": ("a file path or None", _is_optional_path),
    "CACHE_ALIAS": ("the name of a cache in CACHES", _is_text),
    "KEY_CACHE_TTL": ("a number of seconds", _is_seconds),
    "KEY_REFRESH_MIN_INTERVAL": ("a number of seconds", _is_seconds),
    "KEY_MAX_STALE": ("a number of seconds", _is_seconds),
    "KEYS_RETRY_AFTER": ("a number of seconds", _is_seconds),
    "HTTP_CONNECT_TIMEOUT": ("a number of seconds above 0", _is_positive_seconds),
    "HTTP_READ_TIMEOUT": ("a number of seconds above 0", _is_positive_seconds),
    "HTTP_MAX_RESPONSE_BYTES": ("a whole number of bytes", _is_count),
    "TOKEN_CACHE_MAX_ENTRIES": ("a whole number", _is_count),
    "MAX_AUTHORIZATION_HEADER_BYTES": ("a whole number of bytes", _is_count),
    "MAX_REQUEST_BODY_BYTES": ("a whole number of bytes", _is_count),
    "REALM": ("a string", _is_text),
    "TRUST_REQUEST_ID_HEADER": ("True or False", _is_flag),
    "TRUSTED_PROXIES": ("a list of strings", _is_texts),
    "API_RATE_LIMIT": ("a rate string such as '300/m', or None", _is_optional_text),
    "AUTH_FAILURE_RATE_LIMIT": ("a rate string such as '30/m', or None", _is_optional_text),
    "ADMIN_LOGIN_RATE_LIMIT": ("a rate string such as '5/m', or None", _is_optional_text),
    "API_RATE_LIMIT_BATCH": ("a whole number", _is_count),
    "RATE_LIMIT_FAIL_OPEN": ("True or False", _is_flag),
    "API_PATH_PREFIXES": ("a list of strings", _is_texts),
    "AUDIT_COALESCE_WINDOW": ("a number of seconds", _is_seconds),
    "METRICS_TOKEN": ("a string or None", _is_optional_text),
}

DEV_KEY_FILE_NAME = "dev-key.pem"


def default_dev_key_file() -> Path:
    """The development key's default home: the user's cache directory, outside any project.

    ``$XDG_CACHE_HOME/entra_auth/dev-key.pem``, else ``~/.cache/entra_auth/dev-key.pem``: it
    works the same in every project and can never be committed with one.
    """
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache_home) / "entra_auth" / DEV_KEY_FILE_NAME


class EntraAuthSettings:
    """Attribute access to ``settings.ENTRA_AUTH`` with defaults; unknown names raise."""

    def __init__(self) -> None:
        self._cache: dict[str, Any] = {}
        self._generation = 0

    @property
    def user_settings(self) -> dict[str, Any]:
        configured = getattr(settings, SETTINGS_NAME, None)
        # Anything but a dict is reported by check entra_auth.E023; the defaults apply meanwhile.
        return configured if isinstance(configured, dict) else {}

    @property
    def generation(self) -> int:
        """Bumped on every reload, so derived state can tell it is out of date."""
        return self._generation

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Unknown {SETTINGS_NAME} setting: {name!r}")
        try:
            return self._cache[name]
        except KeyError:
            value = self.user_settings.get(name, DEFAULTS[name])
            self._cache[name] = value
            return value

    @property
    def audiences(self) -> frozenset[str]:
        """Accepted ``aud`` values: configured, or the client id and its ``api://`` URI."""
        configured = self.AUDIENCES
        if configured is None:
            client_id = self.CLIENT_ID
            configured = [client_id, f"api://{client_id}"] if client_id else []
        if self.dev_issuer_trusted and not self.CLIENT_ID:
            from .dev_issuer import DEV_CLIENT_ID

            configured = [*configured, DEV_CLIENT_ID]
        return frozenset(configured)

    @property
    def instance_url(self) -> str:
        """``INSTANCE`` ending in one ``/``: tenant paths are appended to it."""
        instance = self.INSTANCE
        return instance if instance.endswith("/") else instance + "/"

    @property
    def is_multi_tenant(self) -> bool:
        return (self.TENANT_ID or "").lower() in MULTI_TENANT_IDS

    @property
    def dev_issuer_trusted(self) -> bool:
        """The development issuer is trusted only with DEBUG on or an explicit override."""
        return bool(self.DEV_ISSUER) and (
            bool(settings.DEBUG) or bool(self.DEV_ISSUER_WITHOUT_DEBUG)
        )

    def reload(self) -> None:
        self._cache.clear()
        self._generation += 1


MULTI_TENANT_IDS = frozenset({"organizations", "common"})

entra_settings = EntraAuthSettings()


@receiver(setting_changed)
def _reload_on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in (SETTINGS_NAME, "DEBUG", "CACHES"):
        entra_settings.reload()
