"""The optional modules' one error: their extra is not installed."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured


def missing_extra(module: str, package: str, extra: str) -> ImproperlyConfigured:
    """``<module> needs <package>: pip install 'drf-entra-auth[<extra>]'.``"""
    return ImproperlyConfigured(f"{module} needs {package}: pip install 'drf-entra-auth[{extra}]'.")
