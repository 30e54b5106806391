"""System check for tenant isolation: each request's tenant context must end with it (SPEC 9)."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.checks import Error, Tags, register

REQUEST_CONTEXT_MIDDLEWARE = "entra_auth.middleware.RequestContextMiddleware"


@register(Tags.security)
def check_tenant_middleware(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """``entra_auth.E020``: tenant-owned models need ``RequestContextMiddleware``.

    It runs each request in its own context; without it a worker thread could keep one
    request's tenant for the next request.
    """
    from .tenancy import TenantOwnedModel

    configs = apps.get_app_configs() if app_configs is None else app_configs
    tenant_models = sorted(
        model._meta.label
        for config in configs
        for model in config.get_models()
        if issubclass(model, TenantOwnedModel)
    )
    if not tenant_models or REQUEST_CONTEXT_MIDDLEWARE in (settings.MIDDLEWARE or ()):
        return []
    return [
        Error(
            f"Tenant-owned models ({', '.join(tenant_models)}) need "
            "RequestContextMiddleware, which ends each request's tenant context.",
            hint=f"Add '{REQUEST_CONTEXT_MIDDLEWARE}' first in MIDDLEWARE.",
            id="entra_auth.E020",
        )
    ]
