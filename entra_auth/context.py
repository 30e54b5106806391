"""The request context: which tenant the running code acts for, and which request it serves.

``contextvars`` variables, so threads and asyncio tasks never see each other's tenant or
request (docs/tenancy.md). Kept apart from ``entra_auth.tenancy`` (which re-exports the tenant
names) because it needs no models: middleware and logging import it before Django's apps are
ready. ``RequestContextMiddleware`` sets the request and its id, and resets all three when the
request ends.
"""

from __future__ import annotations

import contextvars
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_current_tenant: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "entra_auth_tenant", default=None
)
_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "entra_auth_request_id", default=None
)
_current_request: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "entra_auth_request", default=None
)
_all_tenants_open: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "entra_auth_all_tenants", default=False
)
# Called when an all_tenants_context() block ends (entra_auth.tenancy closes the database
# sessions it opened to every tenant).
_on_all_tenants_closed: list[Any] = []


def current_request_id() -> str | None:
    """The id of the request being handled in this context, if any."""
    return _request_id.get()


def current_request() -> Any:
    """The Django request being handled in this context, if any (for the audit log)."""
    return _current_request.get()


@contextmanager
def request_context(request: Any, request_id: str) -> Iterator[None]:
    """Run a request: its id and the request are current, and no tenant is, until it ends."""
    id_token = _request_id.set(request_id)
    request_token = _current_request.set(request)
    tenant_token = _current_tenant.set(None)
    open_token = _all_tenants_open.set(False)
    try:
        yield
    finally:
        _all_tenants_open.reset(open_token)
        _current_tenant.reset(tenant_token)
        _current_request.reset(request_token)
        _request_id.reset(id_token)


def current_tenant() -> str | None:
    """The tenant (lower-case GUID) this code runs for; None outside any tenant context."""
    return _current_tenant.get()


def activate_tenant(tenant_id: str | uuid.UUID) -> contextvars.Token:
    """Enter ``tenant_id``'s context (authentication does, per request); ValueError unless a GUID.

    Undo it with ``deactivate_tenant(token)``.
    """
    return _current_tenant.set(canonical_tenant_id(tenant_id))


def deactivate_tenant(token: contextvars.Token) -> None:
    """Restore the tenant context that was current before the matching ``activate_tenant``."""
    _current_tenant.reset(token)


@contextmanager
def tenant_context(tenant_id: str | uuid.UUID) -> Iterator[str]:
    """Run a block as ``tenant_id`` (maintenance code, tests); the previous context comes back
    afterwards, also when the block raises."""
    token = activate_tenant(tenant_id)
    try:
        yield _current_tenant.get()
    finally:
        deactivate_tenant(token)


@contextmanager
def without_tenant() -> Iterator[None]:
    """Run a block outside any tenant context; the context before it comes back afterwards,
    whatever tenant the block entered (as each request does, in ``request_context``)."""
    token = _current_tenant.set(None)
    try:
        yield
    finally:
        _current_tenant.reset(token)


def all_tenants_open() -> bool:
    """Whether code runs inside ``all_tenants_context()`` (and outside any tenant context)."""
    return _all_tenants_open.get() and _current_tenant.get() is None


@contextmanager
def all_tenants_context() -> Iterator[None]:
    """Cross-tenant access, said out loud: inside the block no tenant is current, and the
    ``all_tenants`` manager and, on PostgreSQL, row-level security open every tenant's rows.

    For the admin, maintenance commands and the existence check behind a 404. Everywhere else
    the database shows no tenant's rows without a tenant context (docs/tenancy.md). A tenant
    context entered inside the block confines what follows to that tenant again.
    """
    tenant_token = _current_tenant.set(None)
    open_token = _all_tenants_open.set(True)
    try:
        yield
    finally:
        _all_tenants_open.reset(open_token)
        _current_tenant.reset(tenant_token)
        if not all_tenants_open():
            for closed in _on_all_tenants_closed:
                closed()


_CANONICAL_GUID = re.compile(r"[0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12}")


# Tenant ids already seen in canonical form: each request activates its caller's tenant, and
# a set lookup is cheaper than matching the pattern again. Bounded; emptied when full. No
# setting changes what is canonical.
_seen_canonical: set[str] = set()
_MAX_SEEN_CANONICAL = 10_000


def canonical_tenant_id(tenant_id: str | uuid.UUID) -> str:
    """The lower-case hyphenated form of a tenant GUID; ValueError for anything else."""
    if type(tenant_id) is str and tenant_id in _seen_canonical:
        return tenant_id
    # Validated tokens already carry the canonical form: skip the UUID round trip.
    if type(tenant_id) is str and _CANONICAL_GUID.fullmatch(tenant_id):
        if len(_seen_canonical) >= _MAX_SEEN_CANONICAL:
            _seen_canonical.clear()
        _seen_canonical.add(tenant_id)
        return tenant_id
    return str(uuid.UUID(str(tenant_id)))
