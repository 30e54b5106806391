"""factory-boy factories for tenant-owned rows, and the callers (tokens) tests act as.

Rows are tenant-owned: every factory takes a ``tenant_id`` (``TENANT_A`` by default) and
creates its row inside ``tenant_context(tenant_id)``, through the tenant-scoped manager, so a
factory can never put a row where the API itself could not (``WidgetFactory`` is in
``tests.tenancy_app.factories``). The callers here hold the ``Widgets.*`` scopes and roles of
the test API (``tests.views``), and the requests that carry them: a bearer header, or an
``EntraPrincipal`` set on a bare request to evaluate a permission rule directly.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import factory
from django.db import transaction
from django.test import RequestFactory
from rest_framework.request import Request

from entra_auth.principal import EntraPrincipal
from entra_auth.tenancy import tenant_context
from tests.fake_entra import CLIENT_APP_ID, TENANT_A, TENANT_B, FakeEntra


def user_oid(tenant: str) -> str:
    """The ``oid`` ``FakeEntra.token()`` gives the signed-in user of ``tenant``."""
    return str(uuid.uuid5(uuid.UUID(tenant), "user"))


def app_oid(tenant: str) -> str:
    """The ``oid`` ``FakeEntra.token(app_only=True)`` gives the client's service principal."""
    return str(uuid.uuid5(uuid.UUID(tenant), "app"))


class TenantOwnedFactory(factory.django.DjangoModelFactory):
    """Creates the row inside its tenant; ``created_at=`` back-dates it after the insert."""

    class Meta:
        abstract = True

    tenant_id = TENANT_A

    @classmethod
    def _create(cls, model_class: type[Any], *args: Any, **kwargs: Any) -> Any:
        created_at: datetime | None = kwargs.pop("created_at", None)
        with tenant_context(kwargs["tenant_id"]), transaction.atomic():
            obj = cls._create_in_tenant(model_class, *args, **kwargs)
            if created_at is not None:
                # auto_now_add ignores a given value: set it with an UPDATE instead.
                model_class.objects.filter(pk=obj.pk).update(created_at=created_at)
                obj.created_at = created_at
        return obj

    @classmethod
    def _create_in_tenant(cls, model_class: type[Any], *args: Any, **kwargs: Any) -> Any:
        return super()._create(model_class, *args, **kwargs)


# --- callers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    """Who calls the API: the options of ``FakeEntra.token()`` for one kind of caller."""

    scopes: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    app_only: bool = False
    tenant: str = TENANT_A
    claims: dict[str, Any] = field(default_factory=dict)

    def in_tenant(self, tenant: str) -> Caller:
        return Caller(self.scopes, self.roles, self.app_only, tenant, dict(self.claims))

    def with_claims(self, **claims: Any) -> Caller:
        return Caller(self.scopes, self.roles, self.app_only, self.tenant, claims)

    @property
    def oid(self) -> str:
        default = app_oid(self.tenant) if self.app_only else user_oid(self.tenant)
        return self.claims.get("oid", default)

    @property
    def app_id(self) -> str:
        return self.claims.get("azp", CLIENT_APP_ID)

    def headers(self, fake_entra: FakeEntra) -> dict[str, str]:
        token = fake_entra.token(
            tenant=self.tenant,
            scopes=self.scopes,
            roles=self.roles,
            app_only=self.app_only,
            **self.claims,
        )
        return bearer(token)


def bearer(token: str) -> dict[str, str]:
    """The ``Authorization: Bearer`` header of a request, as test-client keyword arguments."""
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


# Delegated callers (a user signed in to the client app).
READER = Caller(scopes=("Widgets.Read",))
WRITER = Caller(scopes=("Widgets.Write",))
RENAMER = Caller(scopes=("Widgets.Write",), roles=("Widgets.Admin",))
# A delegated token holding no Widgets scope: a token without any ``scp`` is app-only by
# definition, so "no scope" here means only scopes of other APIs.
UNRELATED_USER = Caller(scopes=("User.Read",))
# App-only callers (client credentials).
APP_WITH_ADMIN_ROLE = Caller(app_only=True, roles=("Widgets.Admin",))

# --- permission rules, evaluated without a view ---------------------------------------------

PRINCIPAL_OID = "00000000-0000-4000-8000-0000000000a1"


def principal_request(
    *,
    scopes: tuple[str, ...] = (),
    roles: tuple[str, ...] = (),
    contexts: tuple[str, ...] = (),
    app: bool = False,
) -> Request:
    """A GET request made by an ``EntraPrincipal`` of TENANT_A holding exactly these."""
    request = Request(RequestFactory().get("/"))
    request.user = EntraPrincipal(
        oid=PRINCIPAL_OID,
        tid=TENANT_A,
        scopes=frozenset(scopes),
        roles=frozenset(roles),
        is_app_only=app,
        auth_contexts=frozenset(contexts),
    )
    return request


def evaluate(rule: Any, request: Request, view: Any = None) -> tuple[bool, Any]:
    """``rule``'s ``has_permission`` for ``request``, and the permission it instantiated."""
    permission = rule()
    return permission.has_permission(request, view), permission


__all__ = [
    "APP_WITH_ADMIN_ROLE",
    "PRINCIPAL_OID",
    "READER",
    "RENAMER",
    "TENANT_A",
    "TENANT_B",
    "UNRELATED_USER",
    "WRITER",
    "Caller",
    "TenantOwnedFactory",
    "app_oid",
    "bearer",
    "evaluate",
    "principal_request",
    "user_oid",
]
