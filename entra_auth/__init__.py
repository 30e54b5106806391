"""Protect Django REST Framework APIs with Microsoft Entra ID access tokens.

Public API (import from here): the names in ``__all__`` below. They are loaded on first use,
so importing the package never imports Django models or DRF before apps are ready.
Documented modules: ``entra_auth.permissions``, ``entra_auth.tenancy``, ``entra_auth.rls``,
``entra_auth.audit`` (the audit log), ``entra_auth.signals``, ``entra_auth.logging``,
``entra_auth.throttling``, ``entra_auth.parsers``, ``entra_auth.health`` and
``entra_auth.admin`` (``ReadOnlyAdminMixin``). Everything else is internal.
"""

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "EntraJWTAuthentication": "entra_auth.authentication",
    "EntraPrincipal": "entra_auth.principal",
    "exception_handler": "entra_auth.exceptions",
    "RequestContextMiddleware": "entra_auth.middleware",
    "JsonErrorMiddleware": "entra_auth.middleware",
    "ContentSecurityPolicyMiddleware": "entra_auth.middleware",
    "current_request_id": "entra_auth.middleware",
    "RequestLogMiddleware": "entra_auth.logging",
    "JsonFormatter": "entra_auth.logging",
    "entra_settings": "entra_auth.conf",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'entra_auth' has no attribute {name!r}")
    return getattr(import_module(module), name)
