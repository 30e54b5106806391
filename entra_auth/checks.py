"""System checks for ``ENTRA_AUTH`` (``manage.py check``; ``--deploy`` adds production ones)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from .conf import entra_settings
from .keys import is_allowed_url
from .rate_counter import Rate

_GUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
SUPPORTED_TOKEN_VERSIONS = frozenset({"1.0", "2.0"})
MAX_SENSIBLE_CLOCK_SKEW_S = 600
AUTHENTICATION_CLASS = "entra_auth.authentication.EntraJWTAuthentication"


@register(Tags.security)
def check_entra_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Missing, contradictory or unsafe ``ENTRA_AUTH`` settings."""
    messages: list[Any] = []
    tenant_id = entra_settings.TENANT_ID
    allowed_tenants = list(entra_settings.ALLOWED_TENANTS)

    if entra_settings.DEV_ISSUER and not entra_settings.dev_issuer_trusted:
        messages.append(
            Error(
                "The development token issuer is on but DEBUG is off, so it is not trusted.",
                hint="Turn DEBUG on for local development, or remove ENTRA_DEV_ISSUER. "
                "Never trust development tokens in production.",
                id="entra_auth.E001",
            )
        )
    if not tenant_id and not entra_settings.dev_issuer_trusted:
        messages.append(
            Error(
                "No token issuer is configured: every request would be refused.",
                hint="Set ENTRA_TENANT_ID and ENTRA_CLIENT_ID (or ENTRA_AUTH['TENANT_ID'] and "
                "['CLIENT_ID']); for local development set DJANGO_DEBUG=1 and ENTRA_DEV_ISSUER=1.",
                id="entra_auth.E002",
            )
        )
    if tenant_id and not entra_settings.audiences:
        messages.append(
            Error(
                "No accepted audience: ENTRA_CLIENT_ID (or ENTRA_AUDIENCES) is missing.",
                hint="Set ENTRA_CLIENT_ID to the API's application (client) ID.",
                id="entra_auth.E003",
            )
        )
    if entra_settings.is_multi_tenant and not allowed_tenants:
        messages.append(
            Error(
                f"TENANT_ID is {tenant_id!r} (multi-tenant) but ALLOWED_TENANTS is empty.",
                hint="List the tenant IDs allowed to call in ENTRA_ALLOWED_TENANTS, "
                "or '*' to accept any tenant deliberately.",
                id="entra_auth.E004",
            )
        )
    if "*" in allowed_tenants:
        messages.append(
            Warning(
                "ALLOWED_TENANTS is '*': tokens from any Entra tenant are accepted.",
                hint="Authorize tenants explicitly unless this API is meant for everyone.",
                id="entra_auth.W005",
            )
        )
    bad_tenants = [t for t in allowed_tenants if t != "*" and not _GUID.fullmatch(str(t))]
    if bad_tenants:
        messages.append(
            Error(
                f"ALLOWED_TENANTS has entries that are not tenant GUIDs: {bad_tenants!r}.",
                hint="Use tenant IDs (GUIDs), not domain names.",
                id="entra_auth.E006",
            )
        )
    if tenant_id and not entra_settings.is_multi_tenant and allowed_tenants:
        messages.append(
            Warning(
                "ALLOWED_TENANTS is ignored for a single-tenant API.",
                hint="Set TENANT_ID to 'organizations' for a multi-tenant API, "
                "or drop ALLOWED_TENANTS.",
                id="entra_auth.W007",
            )
        )
    if not is_allowed_url(f"{entra_settings.INSTANCE.rstrip('/')}/"):
        messages.append(
            Error(
                f"INSTANCE {entra_settings.INSTANCE!r} is not an HTTPS URL.",
                hint="Metadata and keys are fetched over HTTPS only "
                "(plain HTTP for loopback hosts).",
                id="entra_auth.E008",
            )
        )
    versions = set(entra_settings.ACCEPTED_TOKEN_VERSIONS)
    if not versions or not versions <= SUPPORTED_TOKEN_VERSIONS:
        messages.append(
            Error(
                "ACCEPTED_TOKEN_VERSIONS must be a non-empty subset of "
                f"{sorted(SUPPORTED_TOKEN_VERSIONS)}.",
                id="entra_auth.E009",
            )
        )
    skew = entra_settings.CLOCK_SKEW
    if not isinstance(skew, (int, float)) or not 0 <= skew <= MAX_SENSIBLE_CLOCK_SKEW_S:
        messages.append(
            Error(
                f"CLOCK_SKEW must be between 0 and {MAX_SENSIBLE_CLOCK_SKEW_S} seconds.",
                hint="Microsoft's default is 300.",
                id="entra_auth.E010",
            )
        )
    if entra_settings.APP_SPECIFIC_KEYS and not entra_settings.CLIENT_ID:
        messages.append(
            Error(
                "APP_SPECIFIC_KEYS needs CLIENT_ID (keys are read with ?appid=<client id>).",
                id="entra_auth.E011",
            )
        )
    messages.extend(_rate_limit_errors())
    classes = list(
        getattr(settings, "REST_FRAMEWORK", {}).get("DEFAULT_AUTHENTICATION_CLASSES", [])
    )
    if AUTHENTICATION_CLASS in classes and classes[0] != AUTHENTICATION_CLASS:
        messages.append(
            Warning(
                "EntraJWTAuthentication is not the first authentication class, so a missing "
                "token is not answered with 'WWW-Authenticate: Bearer'.",
                hint="Put it first in REST_FRAMEWORK['DEFAULT_AUTHENTICATION_CLASSES'].",
                id="entra_auth.W012",
            )
        )
    return messages


def _rate_limit_errors() -> list[Any]:
    """Rates that would fail on the first request, found at start-up instead."""
    messages: list[Any] = []
    for name in ("API_RATE_LIMIT", "AUTH_FAILURE_RATE_LIMIT"):
        rate = getattr(entra_settings, name)
        if rate is None:
            continue
        try:
            Rate.parse(rate)
        except ValueError as exc:
            messages.append(
                Error(
                    f"{name}: {exc}",
                    hint="None turns the limit off.",
                    id="entra_auth.E017",
                )
            )
    batch = entra_settings.API_RATE_LIMIT_BATCH
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        messages.append(
            Error(
                f"API_RATE_LIMIT_BATCH must be a whole number of at least 1, not {batch!r}.",
                hint="1 writes every request to the cache; the default is 5.",
                id="entra_auth.E018",
            )
        )
    return messages


PROCESS_LOCAL_CACHES = frozenset(
    {
        "django.core.cache.backends.locmem.LocMemCache",
        "django.core.cache.backends.dummy.DummyCache",
    }
)


@register(Tags.security, deploy=True)
def check_entra_deploy(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Production: development tokens are never trusted; limits and keys are shared."""
    messages: list[Any] = []
    backend = settings.CACHES.get(entra_settings.CACHE_ALIAS, {}).get("BACKEND", "")
    rate_limited = entra_settings.API_RATE_LIMIT or entra_settings.AUTH_FAILURE_RATE_LIMIT
    if rate_limited and backend in PROCESS_LOCAL_CACHES:
        messages.append(
            Warning(
                f"The cache ({backend}) is not shared: each worker counts rate limits and "
                "fetches signing keys on its own.",
                hint="Set REDIS_URL (Django's Redis cache) when running several workers.",
                id="entra_auth.W016",
            )
        )
    if entra_settings.dev_issuer_trusted and not settings.DEBUG:
        messages.append(
            Error(
                "The development token issuer is trusted with DEBUG off "
                "(DEV_ISSUER_WITHOUT_DEBUG): anyone with the local key can mint tokens.",
                hint="Remove ENTRA_DEV_ISSUER and DEV_ISSUER_WITHOUT_DEBUG in production.",
                id="entra_auth.E013",
            )
        )
    return messages


def _routed_views(patterns: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for pattern in patterns:
        if hasattr(pattern, "url_patterns"):
            yield from _routed_views(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern), pattern.callback


def _unnamed_requirements(callback: Any) -> list[str]:
    from .permissions import unnamed_requirements

    return [
        name
        for permission in getattr(callback.cls, "permission_classes", ())
        for name in unnamed_requirements(permission)
    ]


def _uncovered_actions(callback: Any) -> list[str]:
    from .permissions import covers_action

    view_class = callback.cls
    actions = getattr(callback, "actions", None) or {
        method: method for method in view_class.http_method_names if hasattr(view_class, method)
    }
    return [
        action
        for permission in getattr(view_class, "permission_classes", ())
        for method, action in actions.items()
        if not covers_action(permission, action, method)
    ]


@register(Tags.security, Tags.urls)
def check_permission_rules(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Every routed action of a view guarded by ``per_action`` has a rule (SPEC 8: fail closed)."""
    from django.urls import get_resolver

    messages: list[Any] = []
    for route, callback in _routed_views(get_resolver().url_patterns):
        if getattr(callback, "cls", None) is None:
            continue
        for action in _uncovered_actions(callback):
            messages.append(
                Error(
                    f"{callback.cls.__name__} (route {route!r}) has no permission rule for "
                    f"action {action!r}: such requests would be refused.",
                    hint="Name the action, or 'safe'/'unsafe'/'default', in per_action(...).",
                    obj=callback.cls,
                    id="entra_auth.E014",
                )
            )
        for name in _unnamed_requirements(callback):
            messages.append(
                Error(
                    f"{callback.cls.__name__} (route {route!r}) uses {name} without naming "
                    "what it requires: its requests fail.",
                    hint=f"Write {name}('<scope or role>', ...).",
                    obj=callback.cls,
                    id="entra_auth.E015",
                )
            )
    return messages
