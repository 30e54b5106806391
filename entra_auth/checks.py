"""System checks for entra_auth (``manage.py check``; ``--deploy`` adds production ones).

One function per concern, as Django's own check modules: the ``ENTRA_AUTH`` dict itself, the
token issuer, tenants, token rules, rate limits, how the app is wired into the project, and
the permission rules of routed views. Every message has an ``entra_auth.*`` id and a hint in
the settings' own vocabulary (docs/configuration.md lists them all).
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Callable, Iterator
from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.utils.translation import gettext_lazy as _

from .conf import DEFAULTS, SETTING_TYPES, SETTINGS_NAME, entra_settings
from .keys import is_allowed_url
from .rate_counter import Rate

_GUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
SUPPORTED_TOKEN_VERSIONS = frozenset({"1.0", "2.0"})
MAX_SENSIBLE_CLOCK_SKEW_S = 600
AUTHENTICATION_CLASS = "entra_auth.authentication.EntraJWTAuthentication"
REQUEST_CONTEXT_MIDDLEWARE = "entra_auth.middleware.RequestContextMiddleware"
ADMIN_LOGIN_MIDDLEWARE = "entra_auth.http.admin_login.AdminLoginRateLimitMiddleware"
PROCESS_LOCAL_CACHES = frozenset(
    {
        "django.core.cache.backends.locmem.LocMemCache",
        "django.core.cache.backends.dummy.DummyCache",
    }
)
DJANGO_RATELIMIT_DEFAULT_CACHE = "default"
_Check = Callable[..., list[Any]]


def _reading_settings(*tags: str, **options: Any) -> Callable[[_Check], _Check]:
    """``register(*tags)`` a check that reads ``ENTRA_AUTH`` values; it speaks only when the
    dict is well formed (a dict of known keys with values of the right type): otherwise only
    ``check_settings_shape`` speaks, so each mistake is reported once, by name."""

    def decorate(check: _Check) -> _Check:
        @functools.wraps(check)
        def guarded(app_configs: Any = None, **kwargs: Any) -> list[Any]:
            if check_settings_shape():
                return []
            return check(app_configs, **kwargs)

        return register(*tags, **options)(guarded)

    return decorate


@register(Tags.security)
def check_settings_shape(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """``ENTRA_AUTH`` is a dict (E023) of known keys (E021) with values of their type (E022)."""
    configured = getattr(settings, SETTINGS_NAME, None)
    if configured is None:
        return []
    if not isinstance(configured, dict):
        return [
            Error(
                _("%(name)s must be a dict, not %(type)s.")
                % {"name": SETTINGS_NAME, "type": type(configured).__name__},
                hint=_("Write %(name)s = {'TENANT_ID': ..., 'CLIENT_ID': ...}.")
                % {"name": SETTINGS_NAME},
                id="entra_auth.E023",
            )
        ]
    messages: list[Any] = []
    for key in configured:
        if key in DEFAULTS:
            continue
        close = difflib.get_close_matches(str(key), DEFAULTS, n=1)
        hint = (
            _("Did you mean %(key)r?") % {"key": close[0]}
            if close
            else _("The known keys are listed in docs/configuration.md.")
        )
        messages.append(
            Error(
                _("%(name)s has an unknown key %(key)r: it would be ignored.")
                % {"name": SETTINGS_NAME, "key": key},
                hint=hint,
                id="entra_auth.E021",
            )
        )
    for key, value in configured.items():
        if key not in SETTING_TYPES:
            continue
        expected, accepts = SETTING_TYPES[key]
        if not accepts(value):
            messages.append(
                Error(
                    _("%(name)s[%(key)r] must be %(expected)s, not %(value)r.")
                    % {"name": SETTINGS_NAME, "key": key, "expected": expected, "value": value},
                    hint=_("Its default is %(default)r.") % {"default": DEFAULTS[key]},
                    id="entra_auth.E022",
                )
            )
    return messages


@_reading_settings(Tags.security)
def check_token_issuer(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Someone issues the tokens this API accepts, for this API (E001-E003, E008, E011)."""
    messages: list[Any] = []
    if entra_settings.DEV_ISSUER and not entra_settings.dev_issuer_trusted:
        messages.append(
            Error(
                _("The development token issuer is on but DEBUG is off, so it is not trusted."),
                hint=_(
                    "Turn DEBUG on for local development, or set ENTRA_AUTH['DEV_ISSUER'] to "
                    "False. Never trust development tokens in production."
                ),
                id="entra_auth.E001",
            )
        )
    if not entra_settings.TENANT_ID and not entra_settings.dev_issuer_trusted:
        messages.append(
            Error(
                _("No token issuer is configured: every request would be refused."),
                hint=_(
                    "Set ENTRA_AUTH['TENANT_ID'] and ENTRA_AUTH['CLIENT_ID']; for local "
                    "development set ENTRA_AUTH['DEV_ISSUER'] = True with DEBUG on."
                ),
                id="entra_auth.E002",
            )
        )
    if entra_settings.TENANT_ID and not entra_settings.audiences:
        messages.append(
            Error(
                _("No accepted audience: ENTRA_AUTH['CLIENT_ID'] (or ['AUDIENCES']) is missing."),
                hint=_("Set ENTRA_AUTH['CLIENT_ID'] to the API's application (client) ID."),
                id="entra_auth.E003",
            )
        )
    if not is_allowed_url(f"{entra_settings.INSTANCE.rstrip('/')}/"):
        messages.append(
            Error(
                _("ENTRA_AUTH['INSTANCE'] %(instance)r is not an HTTPS URL.")
                % {"instance": entra_settings.INSTANCE},
                hint=_(
                    "Metadata and keys are fetched over HTTPS only (plain HTTP for loopback hosts)."
                ),
                id="entra_auth.E008",
            )
        )
    if entra_settings.APP_SPECIFIC_KEYS and not entra_settings.CLIENT_ID:
        messages.append(
            Error(
                _(
                    "ENTRA_AUTH['APP_SPECIFIC_KEYS'] needs ENTRA_AUTH['CLIENT_ID'] (keys are "
                    "read with ?appid=<client id>)."
                ),
                hint=_("Set ENTRA_AUTH['CLIENT_ID'], or APP_SPECIFIC_KEYS to False."),
                id="entra_auth.E011",
            )
        )
    return messages


@_reading_settings(Tags.security)
def check_tenants(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """A multi-tenant API names the tenants it accepts (E004, W005, E006, W007)."""
    messages: list[Any] = []
    tenant_id = entra_settings.TENANT_ID
    allowed_tenants = list(entra_settings.ALLOWED_TENANTS)
    if entra_settings.is_multi_tenant and not allowed_tenants:
        messages.append(
            Error(
                _(
                    "ENTRA_AUTH['TENANT_ID'] is %(tenant)r (multi-tenant) but "
                    "ENTRA_AUTH['ALLOWED_TENANTS'] is empty."
                )
                % {"tenant": tenant_id},
                hint=_(
                    "List the tenant IDs allowed to call in ENTRA_AUTH['ALLOWED_TENANTS'], "
                    "or ['*'] to accept any tenant deliberately."
                ),
                id="entra_auth.E004",
            )
        )
    if "*" in allowed_tenants:
        messages.append(
            Warning(
                _(
                    "ENTRA_AUTH['ALLOWED_TENANTS'] is ['*']: tokens from any Entra tenant are "
                    "accepted."
                ),
                hint=_("Authorize tenants explicitly unless this API is meant for everyone."),
                id="entra_auth.W005",
            )
        )
    bad_tenants = [t for t in allowed_tenants if t != "*" and not _GUID.fullmatch(t)]
    if bad_tenants:
        messages.append(
            Error(
                _("ENTRA_AUTH['ALLOWED_TENANTS'] has entries that are not tenant GUIDs: %(bad)r.")
                % {"bad": bad_tenants},
                hint=_("Use tenant IDs (GUIDs), not domain names."),
                id="entra_auth.E006",
            )
        )
    if tenant_id and not entra_settings.is_multi_tenant and allowed_tenants:
        messages.append(
            Warning(
                _("ENTRA_AUTH['ALLOWED_TENANTS'] is ignored for a single-tenant API."),
                hint=_(
                    "Set ENTRA_AUTH['TENANT_ID'] to 'organizations' for a multi-tenant API, "
                    "or drop ALLOWED_TENANTS."
                ),
                id="entra_auth.W007",
            )
        )
    return messages


@_reading_settings(Tags.security)
def check_token_rules(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Token versions and clock skew within what Entra issues (E009, E010)."""
    messages: list[Any] = []
    versions = set(entra_settings.ACCEPTED_TOKEN_VERSIONS)
    if not versions or not versions <= SUPPORTED_TOKEN_VERSIONS:
        messages.append(
            Error(
                _("ENTRA_AUTH['ACCEPTED_TOKEN_VERSIONS'] must be a non-empty subset of %(known)s.")
                % {"known": sorted(SUPPORTED_TOKEN_VERSIONS)},
                hint=_("The default accepts both: ['1.0', '2.0']."),
                id="entra_auth.E009",
            )
        )
    if not 0 <= entra_settings.CLOCK_SKEW <= MAX_SENSIBLE_CLOCK_SKEW_S:
        messages.append(
            Error(
                _("ENTRA_AUTH['CLOCK_SKEW'] must be between 0 and %(max)s seconds.")
                % {"max": MAX_SENSIBLE_CLOCK_SKEW_S},
                hint=_("Microsoft's default is 300."),
                id="entra_auth.E010",
            )
        )
    return messages


@_reading_settings(Tags.security)
def check_rate_limits(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Rates that would fail on the first request, found at start-up instead (E017, E018)."""
    messages: list[Any] = []
    for name in ("API_RATE_LIMIT", "AUTH_FAILURE_RATE_LIMIT", "ADMIN_LOGIN_RATE_LIMIT"):
        rate = getattr(entra_settings, name)
        if rate is None:
            continue
        try:
            Rate.parse(rate)
        except ValueError as exc:
            messages.append(
                Error(
                    f"ENTRA_AUTH[{name!r}]: {exc}",
                    hint=_("Write a rate such as '300/m'; None turns the limit off."),
                    id="entra_auth.E017",
                )
            )
    if entra_settings.API_RATE_LIMIT_BATCH < 1:
        messages.append(
            Error(
                _("ENTRA_AUTH['API_RATE_LIMIT_BATCH'] must be at least 1, not %(batch)r.")
                % {"batch": entra_settings.API_RATE_LIMIT_BATCH},
                hint=_("1 writes every request to the cache; the default is 5."),
                id="entra_auth.E018",
            )
        )
    return messages


@_reading_settings(Tags.security)
def check_project_wiring(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """The project gives entra_auth what it needs: its middleware, its cache, its place
    among the authentication classes (E020, E024, E025, W012)."""
    messages: list[Any] = []
    if REQUEST_CONTEXT_MIDDLEWARE not in (getattr(settings, "MIDDLEWARE", None) or ()):
        messages.append(
            Error(
                _(
                    "RequestContextMiddleware is not in MIDDLEWARE: requests would get no id, "
                    "a tenant context could outlive its request, and 403s would be neither "
                    "explained nor audited."
                ),
                hint=_("Add %(middleware)r first in MIDDLEWARE.")
                % {"middleware": REQUEST_CONTEXT_MIDDLEWARE},
                id="entra_auth.E020",
            )
        )
    alias = entra_settings.CACHE_ALIAS
    if alias not in settings.CACHES:
        messages.append(
            Error(
                _("ENTRA_AUTH['CACHE_ALIAS'] is %(alias)r, which is not in CACHES.")
                % {"alias": alias},
                hint=_("Name a cache defined in CACHES (the default is 'default')."),
                id="entra_auth.E024",
            )
        )
    ratelimit_cache = getattr(settings, "RATELIMIT_USE_CACHE", DJANGO_RATELIMIT_DEFAULT_CACHE)
    # The limits django-ratelimit counts for entra_auth: failed authentications, and failed
    # admin logins where their middleware is installed.
    counted_by_django_ratelimit = bool(entra_settings.AUTH_FAILURE_RATE_LIMIT) or bool(
        entra_settings.ADMIN_LOGIN_RATE_LIMIT
        and ADMIN_LOGIN_MIDDLEWARE in (getattr(settings, "MIDDLEWARE", None) or ())
    )
    if counted_by_django_ratelimit and ratelimit_cache != alias:
        messages.append(
            Error(
                _(
                    "Failed authentications or admin logins would be counted in the cache "
                    "%(ratelimit)r "
                    "(RATELIMIT_USE_CACHE, django-ratelimit's setting) and everything else "
                    "in %(alias)r (ENTRA_AUTH['CACHE_ALIAS'])."
                )
                % {"ratelimit": ratelimit_cache, "alias": alias},
                hint=_("Set RATELIMIT_USE_CACHE = %(alias)r.") % {"alias": alias},
                id="entra_auth.E025",
            )
        )
    rest_framework = getattr(settings, "REST_FRAMEWORK", None) or {}
    classes = list(rest_framework.get("DEFAULT_AUTHENTICATION_CLASSES", []))
    if AUTHENTICATION_CLASS in classes and classes[0] != AUTHENTICATION_CLASS:
        messages.append(
            Warning(
                _(
                    "EntraJWTAuthentication is not the first authentication class, so a "
                    "missing token is not answered with 'WWW-Authenticate: Bearer'."
                ),
                hint=_("Put it first in REST_FRAMEWORK['DEFAULT_AUTHENTICATION_CLASSES']."),
                id="entra_auth.W012",
            )
        )
    return messages


@_reading_settings(Tags.security, deploy=True)
def check_entra_deploy(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Production: development tokens are never trusted; limits and keys are shared
    (E013, W016)."""
    messages: list[Any] = []
    alias = entra_settings.CACHE_ALIAS
    backend = settings.CACHES.get(alias, {}).get("BACKEND", "")
    if backend in PROCESS_LOCAL_CACHES:
        messages.append(
            Warning(
                _(
                    "The cache %(alias)r (%(backend)s) is not shared: each worker fetches "
                    "signing keys, counts rate limits and coalesces audit events on its own."
                )
                % {"alias": alias, "backend": backend},
                hint=_(
                    "Point ENTRA_AUTH['CACHE_ALIAS'] at a shared cache in CACHES (Django's "
                    "Redis or Memcached backend) when running several workers."
                ),
                id="entra_auth.W016",
            )
        )
    if entra_settings.dev_issuer_trusted and not settings.DEBUG:
        messages.append(
            Error(
                _(
                    "The development token issuer is trusted with DEBUG off "
                    "(ENTRA_AUTH['DEV_ISSUER_WITHOUT_DEBUG']): anyone with the local key can "
                    "mint tokens."
                ),
                hint=_(
                    "Set ENTRA_AUTH['DEV_ISSUER'] and ['DEV_ISSUER_WITHOUT_DEBUG'] to False "
                    "in production."
                ),
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
    """Every routed action of a view guarded by ``per_action`` has a rule: fail closed (E014,
    E015)."""
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
