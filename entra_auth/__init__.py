"""Protect Django REST Framework APIs with Microsoft Entra ID access tokens.

Public API (import from here): the names in ``__all__`` below. They are loaded on first use,
so importing the package never imports Django models or DRF before apps are ready.
Documented modules: ``entra_auth.authentication``, ``entra_auth.permissions``,
``entra_auth.tenancy``, ``entra_auth.rls``, ``entra_auth.audit`` (the audit log),
``entra_auth.signals``, ``entra_auth.logging``, ``entra_auth.throttling``,
``entra_auth.exceptions``, ``entra_auth.admin`` (``ReadOnlyAdminMixin``) and the optional
HTTP hardening in ``entra_auth.http``. Everything else is internal. The names that moved to
``entra_auth.http`` keep working at their old paths, with a ``DeprecationWarning``.
"""

from importlib import import_module
from typing import Any

from ._moved import moved_names

__version__ = "0.1.0"

_PUBLIC = {
    "EntraJWTAuthentication": "entra_auth.authentication",
    "EntraPrincipal": "entra_auth.principal",
    "exception_handler": "entra_auth.exceptions",
    "RequestContextMiddleware": "entra_auth.middleware",
    "current_request_id": "entra_auth.context",
    "JsonFormatter": "entra_auth.logging",
    "entra_settings": "entra_auth.conf",
    "HasScope": "entra_auth.permissions",
    "HasAppRole": "entra_auth.permissions",
    "IsAppOnly": "entra_auth.permissions",
    "IsDelegated": "entra_auth.permissions",
    "IsEntraCaller": "entra_auth.permissions",
    "RequiresAuthContext": "entra_auth.permissions",
    "SameTenant": "entra_auth.permissions",
    "per_action": "entra_auth.permissions",
    "TenantOwnedModel": "entra_auth.tenancy",
    "tenant_context": "entra_auth.tenancy",
    "AuditEvent": "entra_auth.models",
}

__all__ = sorted(_PUBLIC)

_MOVED = {
    "JsonErrorMiddleware": "entra_auth.http.errors",
    "ContentSecurityPolicyMiddleware": "entra_auth.http.csp",
    "RequestLogMiddleware": "entra_auth.http.request_log",
}


# Moved names warn and resolve; any other unknown name is an AttributeError.
_moved_getattr = moved_names(__name__, _MOVED)


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        return _moved_getattr(name)
    return getattr(import_module(module), name)
