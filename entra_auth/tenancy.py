"""Tenant isolation in the ORM: the tenant context and tenant-owned models (docs/tenancy.md).

Authentication activates the caller's tenant (``tid``) in a ``contextvars`` variable
(``entra_auth.context``, re-exported here), so threads and asyncio tasks never see each
other's tenant; ``RequestContextMiddleware`` resets it when each request ends, also on errors.

``TenantOwnedModel`` gives a model an indexed ``tenant_id`` and two managers:

- ``objects``, the default: every query is filtered to the current tenant. The filter reads the
  tenant when the SQL is built, not when the queryset is, so ``queryset = Model.objects.all()``
  on a view class is safe; with no tenant context it raises ``TenantContextMissing`` rather than
  return every tenant's rows. Writes take the current tenant and refuse any other.
- ``all_tenants``: unscoped, for the admin and maintenance commands, and usable only inside
  ``all_tenants_context()`` (elsewhere it raises ``CrossTenantAccessRefused``); greppable, and
  every use should say why in a comment.

The base manager (``Model._base_manager``) stays Django's plain, unscoped one on purpose: Django
uses it for the UPDATE of ``save()``, for ``refresh_from_db``, forward ForeignKey access and
deletion cascades, which maintenance code outside any tenant context needs too. They still stay
inside a tenant: ``save()`` refuses a ForeignKey to another tenant's row (so forward relations
and ``select_related`` cannot cross tenants) and its UPDATE is limited to the row's own tenant.

On PostgreSQL, row-level security (``entra_auth.rls``) enforces the same rule underneath; the
settings wrapper it needs is installed here on every new connection.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.core.signals import request_finished
from django.db import connections, models, router
from django.db.backends.signals import connection_created
from django.dispatch import receiver

from .context import (
    _on_all_tenants_closed,
    activate_tenant,
    all_tenants_context,
    all_tenants_open,
    canonical_tenant_id,
    current_request,
    current_tenant,
    deactivate_tenant,
    tenant_context,
    without_tenant,
)
from .rls import EnableRowLevelSecurity, close_tenant_sessions, install_tenant_settings

__all__ = [
    "CrossTenantAccessRefused",
    "EnableRowLevelSecurity",
    "TenantContextMissing",
    "TenantMismatch",
    "TenantOwnedModel",
    "TenantQuerySet",
    "TenantScopedManager",
    "activate_tenant",
    "all_tenants_context",
    "all_tenants_open",
    "current_tenant",
    "deactivate_tenant",
    "exists_in_other_tenant",
    "tenant_context",
    "without_tenant",
]

TENANT_FIELD = "tenant_id"


class TenantContextMissing(Exception):
    """A tenant-scoped query or save ran outside any tenant context: refused, never unscoped."""


class CrossTenantAccessRefused(TenantContextMissing):
    """The ``all_tenants`` manager was used outside ``all_tenants_context()``."""


class TenantMismatch(Exception):
    """A write would put a row in, or point a row at, a tenant other than its own."""


def exists_in_other_tenant(model: type[TenantOwnedModel], pk: Any) -> bool:
    """Whether ``pk`` names a row of ``model`` owned by a tenant other than the current one.

    For the audit log only (a tenant denial), never to answer the caller, who gets the
    same 404 either way. The scoped manager, and on PostgreSQL row-level security, hide other
    tenants' rows, so this one existence query runs in ``all_tenants_context()``, which opens
    the database policy to all tenants for it alone.
    """
    tenant = _require_tenant("exists_in_other_tenant()")
    try:
        key = model._meta.pk.to_python(pk)
    except ValidationError:
        return False  # not even a valid id: it names no row anywhere
    # The one deliberate cross-tenant query: does the row exist in another tenant at all?
    with all_tenants_context():
        return model.all_tenants.filter(pk=key).exclude(tenant_id=tenant).exists()


def _require_tenant(action: str) -> str:
    tenant = current_tenant()
    if tenant is None:
        raise TenantContextMissing(
            f"{action} needs a tenant context: run it inside a request, or tenant_context(...), "
            "or all_tenants_context() with the all_tenants manager, deliberately."
        )
    return tenant


class _AllTenantsOpen(models.Expression):
    """``TRUE`` inside ``all_tenants_context()``; refuses to compile anywhere else, so the
    unscoped manager cannot be used by accident, on any database."""

    conditional = True

    def __init__(self) -> None:
        super().__init__(output_field=models.BooleanField())

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, Sequence[Any]]:
        _require_all_tenants_open()
        return "1 = 1", ()


def _require_all_tenants_open() -> None:
    if not all_tenants_open():
        raise CrossTenantAccessRefused(
            "The all_tenants manager reads every tenant's rows: use it inside "
            "entra_auth.tenancy.all_tenants_context(), or the tenant-scoped manager."
        )


class _AllTenantsQuerySet(models.QuerySet):
    """Writes are refused up front: Django runs them inside ``atomic()``, where a failure
    raised while building the SQL would also break the caller's transaction."""

    def update(self, **kwargs: Any) -> int:
        _require_all_tenants_open()
        return super().update(**kwargs)

    def delete(self) -> tuple[int, dict[str, int]]:
        _require_all_tenants_open()
        return super().delete()


class AllTenantsManager(models.Manager.from_queryset(_AllTenantsQuerySet)):
    """The unscoped manager (``all_tenants``): every tenant's rows, inside
    ``all_tenants_context()`` only."""

    def get_queryset(self) -> models.QuerySet:
        return super().get_queryset().filter(_AllTenantsOpen())


def _is_tenant_filter(node: Any) -> bool:
    """Whether a WHERE node is the scoped manager's ``tenant_id = <current tenant>``."""
    return isinstance(getattr(node, "rhs", None), _CurrentTenant)


class _CurrentTenant(models.Expression):
    """The current tenant as a query parameter, read when the SQL is built."""

    def __init__(self) -> None:
        super().__init__(output_field=models.UUIDField())

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, Sequence[Any]]:
        tenant = _require_tenant("A tenant-scoped query")
        return compiler.compile(models.Value(uuid.UUID(tenant), output_field=self.output_field))


def _claim(obj: TenantOwnedModel, tenant: str | None) -> None:
    """Give ``obj`` the current tenant when it has none; refuse one that differs.

    Outside any tenant context a row can be written only with an explicit ``tenant_id`` inside
    ``all_tenants_context()``: the database refuses anything else too (row-level security).
    """
    if tenant is None and not all_tenants_open():
        raise TenantContextMissing(
            f"Saving a {type(obj).__name__} needs a tenant context, or all_tenants_context() "
            "and an explicit tenant_id."
        )
    if obj.tenant_id is None:
        if tenant is None:
            raise TenantContextMissing(
                f"Saving a {type(obj).__name__} in all_tenants_context() needs an explicit "
                "tenant_id."
            )
        obj.tenant_id = uuid.UUID(tenant)
        return
    obj.tenant_id = uuid.UUID(str(obj.tenant_id))
    if tenant is not None and str(obj.tenant_id) != tenant:
        raise TenantMismatch(
            f"This {type(obj).__name__} belongs to tenant {obj.tenant_id}, "
            f"not to the current tenant {tenant}."
        )


def _tenant_foreign_keys(model: type[models.Model], names: Iterable[str] | None) -> list[Any]:
    """Concrete ForeignKey/OneToOneField fields of ``model`` that point at tenant-owned models."""
    wanted = None if names is None else set(names)
    return [
        field
        for field in model._meta.concrete_fields
        if (field.many_to_one or field.one_to_one)
        and issubclass(field.related_model, TenantOwnedModel)
        and (wanted is None or field.name in wanted or field.attname in wanted)
    ]


def _tenants_of_targets(field: Any, values: Iterable[Any], using: str) -> dict[Any, uuid.UUID]:
    """The tenant of each row ``field`` may point at, keyed by the target field's value.

    A row of another tenant hidden by row-level security reads as missing, and is refused too.
    """
    target = field.target_field
    keys = {target.to_python(value) for value in values} - {None}
    if not keys:
        return {}
    rows = field.related_model._base_manager.using(using).filter(**{f"{target.attname}__in": keys})
    return dict(rows.values_list(target.attname, TENANT_FIELD))


def _verify_references(
    model: type[models.Model],
    objs: list[Any],
    using: str,
    names: Iterable[str] | None = None,
) -> None:
    """Each ForeignKey of ``objs`` to a tenant-owned row points into the object's own tenant."""
    for field in _tenant_foreign_keys(model, names):
        values = [getattr(obj, field.attname) for obj in objs]
        tenants = _tenants_of_targets(field, values, using)
        for obj, value in zip(objs, values, strict=True):
            if value is None:
                continue
            if tenants.get(field.target_field.to_python(value)) != obj.tenant_id:
                raise TenantMismatch(
                    f"{model.__name__}.{field.name} points at a "
                    f"{field.related_model.__name__} that is not in tenant {obj.tenant_id}."
                )


class TenantQuerySet(models.QuerySet):
    """Queryset of tenant-owned rows whose writes stay inside the current tenant.

    The read filter comes from ``TenantScopedManager``; this class guards the write paths,
    and tells the audit log when a lookup inside a request names another tenant's row.
    """

    def _write_db(self) -> str:
        return self._db or router.db_for_write(self.model)

    def get(self, *args: Any, **kwargs: Any) -> Any:
        """``QuerySet.get()``; a miss inside a request that another tenant's row would have
        matched is recorded as a tenant denial (the caller's 404 stays the same)."""
        try:
            return super().get(*args, **kwargs)
        except self.model.DoesNotExist:
            self._report_other_tenants_match(args, kwargs)
            raise

    def _report_other_tenants_match(self, args: Any, kwargs: dict[str, Any]) -> None:
        request = current_request()
        tenant = current_tenant()
        if request is None or tenant is None or not self._is_tenant_scoped():
            return
        unscoped = self.model.all_tenants.using(self.db).all()
        unscoped.query = self.query.chain()
        unscoped.query.where.children = [
            child for child in unscoped.query.where.children if not _is_tenant_filter(child)
        ]
        try:
            # The one deliberate cross-tenant query of a request: does the row exist at all?
            with all_tenants_context():
                match = (
                    unscoped.filter(*args, **kwargs)
                    .exclude(**{TENANT_FIELD: tenant})
                    .values_list("pk", flat=True)
                    .first()
                )
        except (ValidationError, ValueError, TypeError):
            return  # a lookup value no row could match: nothing to report
        if match is not None:
            from .permissions import report_tenant_denial

            report_tenant_denial(request, sender=self.model, object_id=match)

    def _is_tenant_scoped(self) -> bool:
        return any(_is_tenant_filter(child) for child in self.query.where.children)

    def create(self, **kwargs: Any) -> Any:
        _require_tenant(f"{self.model.__name__}.objects.create()")
        return super().create(**kwargs)

    def bulk_create(
        self,
        objs: Iterable[Any],
        batch_size: int | None = None,
        ignore_conflicts: bool = False,
        update_conflicts: bool = False,
        update_fields: Sequence[str] | None = None,
        unique_fields: Sequence[str] | None = None,
    ) -> list[Any]:
        """Assign or verify the tenant of every object and of every ForeignKey target."""
        tenant = _require_tenant(f"{self.model.__name__}.objects.bulk_create()")
        if update_conflicts and TENANT_FIELD not in (unique_fields or ()):
            # An upsert on a key shared across tenants would overwrite another tenant's row.
            raise TenantMismatch(
                "bulk_create(update_conflicts=True) needs 'tenant_id' among unique_fields."
            )
        objs = list(objs)
        for obj in objs:
            _claim(obj, tenant)
        _verify_references(self.model, objs, self._write_db())
        return super().bulk_create(
            objs,
            batch_size=batch_size,
            ignore_conflicts=ignore_conflicts,
            update_conflicts=update_conflicts,
            update_fields=update_fields,
            unique_fields=unique_fields,
        )

    def bulk_update(
        self, objs: Iterable[Any], fields: Sequence[str], batch_size: int | None = None
    ) -> int:
        """Verify every object and its updated ForeignKeys belong to the current tenant."""
        tenant = _require_tenant(f"{self.model.__name__}.objects.bulk_update()")
        objs = list(objs)
        for obj in objs:
            _claim(obj, tenant)
        _verify_references(self.model, objs, self._write_db(), fields)
        return super().bulk_update(objs, fields, batch_size=batch_size)

    def update(self, **kwargs: Any) -> int:
        """Refuse to move rows to another tenant or point them at another tenant's rows."""
        tenant = _require_tenant(f"{self.model.__name__}.objects.update()")
        if TENANT_FIELD in kwargs and str(kwargs[TENANT_FIELD]).lower() != tenant:
            raise TenantMismatch("update() cannot move rows to another tenant.")
        for name, value in kwargs.items():
            try:
                field = self.model._meta.get_field(name)
            except FieldDoesNotExist:
                continue  # Django's own update() reports it
            if value is None or hasattr(value, "resolve_expression"):
                continue  # expressions compute per row; bulk_update checks its objects itself
            if field not in _tenant_foreign_keys(self.model, [name]):
                continue
            if isinstance(value, models.Model):
                value = getattr(value, field.target_field.attname)
            tenants = _tenants_of_targets(field, [value], self._write_db())
            if tenants.get(field.target_field.to_python(value)) != uuid.UUID(tenant):
                raise TenantMismatch(
                    f"update() would point {self.model.__name__}.{field.name} at another tenant."
                )
        return super().update(**kwargs)

    def delete(self) -> tuple[int, dict[str, int]]:
        # Checked up front: Django deletes inside atomic(savepoint=False), where a failure
        # raised while building the SQL would also break the caller's transaction.
        _require_tenant(f"{self.model.__name__}.objects.delete()")
        return super().delete()

    def raw(self, *args: Any, **kwargs: Any) -> Any:
        """Refused: raw SQL cannot be tenant-scoped; say so with ``all_tenants.raw()``."""
        raise TypeError(
            f"{self.model.__name__}.objects.raw() cannot be tenant-scoped; use "
            "all_tenants.raw() with an explicit tenant_id condition."
        )


class TenantScopedManager(models.Manager.from_queryset(TenantQuerySet)):
    """Default manager of tenant-owned models: every queryset is limited to the current tenant.

    Django builds reverse related managers from it, so ``widget.parts`` and
    ``prefetch_related("parts")`` stay inside the tenant too.
    """

    def get_queryset(self) -> TenantQuerySet:
        return super().get_queryset().filter(**{TENANT_FIELD: _CurrentTenant()})


class TenantOwnedModel(models.Model):
    """Abstract base for rows owned by one Entra tenant.

    ``objects`` is scoped to the current tenant and fails closed; ``all_tenants`` is not.
    """

    tenant_id = models.UUIDField(db_index=True, editable=False)

    objects = TenantScopedManager()
    # Unscoped on purpose, inside all_tenants_context() only: the admin and maintenance
    # commands. Justify each use.
    all_tenants = AllTenantsManager()

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Take the current tenant, or check the one set; refuse ForeignKeys into other tenants."""
        _claim(self, current_tenant())
        using = kwargs.get("using") or router.db_for_write(type(self), instance=self)
        _verify_references(type(self), [self], using, kwargs.get("update_fields"))
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        """Inside a tenant context, only that tenant's rows can be deleted."""
        tenant = current_tenant()
        if tenant is not None and (
            self.tenant_id is None or canonical_tenant_id(self.tenant_id) != tenant
        ):
            raise TenantMismatch(f"This {type(self).__name__} is not in the current tenant.")
        return super().delete(*args, **kwargs)

    def _do_update(self, base_qs: Any, *args: Any, **kwargs: Any) -> bool:
        # save()'s UPDATE by primary key runs on the unscoped base manager: limit it to this
        # row's tenant, so a stale or forged instance cannot overwrite another tenant's row.
        return super()._do_update(base_qs.filter(**{TENANT_FIELD: self.tenant_id}), *args, **kwargs)


def current_scope() -> tuple[str | None, bool]:
    """The current tenant, and whether every tenant is open (``all_tenants_context()``)."""
    return current_tenant(), all_tenants_open()


def _close_tenant_sessions(**kwargs: Any) -> None:
    close_tenant_sessions(connections)


@receiver(connection_created, dispatch_uid="entra_auth.tenancy.rls_settings")
def _install_rls_settings(sender: Any, connection: Any, **kwargs: Any) -> None:
    install_tenant_settings(connection, current_scope)


# A session left open to a tenant, or to all, is closed when its request or its
# all_tenants_context() ends: a raw cursor that bypasses the wrapper then finds it closed.
request_finished.connect(_close_tenant_sessions, dispatch_uid="entra_auth.tenancy.close")
_on_all_tenants_closed.append(_close_tenant_sessions)
