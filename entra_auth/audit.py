"""Recording audit events (docs/audit.md): ``record()``, event types, coalescing and retention.

``entra_auth`` records refusals itself by subscribing to its signals (``entra_auth.signals``):
failed authentications, authorization and tenant denials, rate limiting. A host app records
its sensitive actions with ``record()``, after registering their type once::

    from entra_auth import audit

    PAYMENT_CREATED = audit.register_event_type("payment_created", "Payment created")
    audit.record(PAYMENT_CREATED, request=request, object_id=payment.pk)

Guarantees:

- A row holds the caller's tenant, ``oid`` and app id (from ``request.user``), the client IP
  (``X-Forwarded-For`` only from ``TRUSTED_PROXIES``), request id, method, path (no query
  string) and user agent, truncated; never the token or another claim. Anything shaped like a
  JWT in the path or user agent is redacted.
- Writing never breaks a request: the row is inserted in a savepoint of its own, and any
  failure (database down, table missing) is logged on ``entra_auth.audit`` and swallowed. Inside
  a transaction the row commits or rolls back with it, so an action's event is kept only when
  the action is.
- Refusals (outcome ``denied``/``failure``) are coalesced: the first one per event type, client
  IP, reason and caller within ``AUDIT_COALESCE_WINDOW`` seconds writes a row; the others in the
  window are counted in the cache and added to that row's ``count`` at most every
  ``COALESCE_FLUSH_INTERVAL_S`` seconds (and once more when the next window opens). So a flood
  of bad tokens from one address costs a handful of writes per minute, not one per request.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.core.cache import caches
from django.db import router, transaction
from django.dispatch import receiver
from django.utils import timezone

from .client_address import UNKNOWN_CLIENT, client_ip
from .conf import entra_settings
from .context import current_request_id
from .logging import redact_tokens, request_principal
from .models import (
    EVENT_TYPE_MAX_LENGTH,
    METHOD_MAX_LENGTH,
    MISSING_MAX_LENGTH,
    OBJECT_ID_MAX_LENGTH,
    PATH_MAX_LENGTH,
    REASON_MAX_LENGTH,
    REQUEST_ID_MAX_LENGTH,
    USER_AGENT_MAX_LENGTH,
    AuditEvent,
    EventType,
    Outcome,
    Reason,
)
from .principal import EntraPrincipal
from .signals import authentication_failed, authorization_denied, rate_limited, tenant_denied

__all__ = [
    "AuditEvent",
    "EventType",
    "Outcome",
    "Reason",
    "event_types",
    "prune",
    "record",
    "register_event_type",
]

logger = logging.getLogger("entra_auth.audit")

# Coalesced counts reach their row at most this often per window (a bounded number of UPDATEs).
COALESCE_FLUSH_INTERVAL_S = 5
PRUNE_BATCH_SIZE = 10_000
_CACHE_PREFIX = "entra_auth:audit:"
# The caller-side fields that tell coalesced refusals apart (no token, no other claim).
_COALESCE_BY = ("event_type", "client_ip", "reason", "tenant_id", "subject_oid", "app_id")
_EVENT_TYPE_NAME = re.compile(rf"[a-z][a-z0-9_.]{{0,{EVENT_TYPE_MAX_LENGTH - 1}}}")
_event_types: dict[str, str] = dict(EventType.choices)


def register_event_type(name: str, label: str | None = None) -> str:
    """Let ``record(name, ...)`` be used (the admin filters by it); returns ``name``.

    Registering the same name again is harmless; a name is lower-case ``[a-z0-9_.]``.
    """
    if not _EVENT_TYPE_NAME.fullmatch(name):
        raise ValueError(
            f"Audit event type {name!r}: use 1 to {EVENT_TYPE_MAX_LENGTH} characters "
            "from a-z, 0-9, '_' and '.', starting with a letter."
        )
    _event_types[name] = label or name.replace("_", " ").capitalize()
    return name


def event_types() -> dict[str, str]:
    """Every known event type and its label: ``EventType`` and those host apps registered."""
    return dict(_event_types)


def record(
    event_type: str,
    *,
    request: Any = None,
    outcome: str = Outcome.SUCCESS,
    reason: str = "",
    tenant_id: str | None = None,
    subject_oid: str | None = None,
    app_id: str | None = None,
    object_id: Any = "",
    missing: Iterable[str] = (),
) -> AuditEvent | None:
    """Record one audit event; the row, or None when coalesced or when it could not be written.

    The caller's tenant, ``oid`` and app id default to ``request.user``'s when it is an Entra
    principal. A storage failure is logged, never raised; an unknown ``event_type`` or
    ``outcome`` is a programming error and raises ``ValueError``.
    """
    if event_type not in _event_types:
        raise ValueError(
            f"Unknown audit event type {event_type!r}: register it with "
            "entra_auth.audit.register_event_type()."
        )
    if outcome not in Outcome.values:
        raise ValueError(f"Audit outcome must be one of {Outcome.values}, not {outcome!r}.")
    caller = _caller(request)
    fields = {
        **_request_fields(request),
        "event_type": str(event_type),
        "outcome": str(outcome),
        "reason": _truncate(str(reason), REASON_MAX_LENGTH),
        "tenant_id": _first(tenant_id, getattr(caller, "tid", None)),
        "subject_oid": _first(subject_oid, getattr(caller, "oid", None)),
        "app_id": _first(app_id, getattr(caller, "app_id", None)),
        "object_id": _truncate(str(object_id or ""), OBJECT_ID_MAX_LENGTH),
        "missing": _truncate(" ".join(missing), MISSING_MAX_LENGTH),
    }
    window_s = entra_settings.AUDIT_COALESCE_WINDOW
    if outcome == Outcome.SUCCESS or not window_s:
        return _write(fields)
    try:
        return _write_or_count(fields, int(window_s))
    except Exception:  # a cache outage: keep the event, uncoalesced
        logger.warning("audit coalescing unavailable; writing the event", exc_info=True)
        return _write(fields)


def prune(older_than: timedelta, *, dry_run: bool = False) -> int:
    """Delete events older than ``older_than`` (in batches); with ``dry_run``, only count them."""
    old = AuditEvent.objects.filter(occurred_at__lt=timezone.now() - older_than)
    if dry_run:
        return old.count()
    deleted = 0
    while batch := list(old.values_list("pk", flat=True)[:PRUNE_BATCH_SIZE]):
        # Each batch commits on its own: no long lock on a large table.
        deleted += AuditEvent.objects.filter(pk__in=batch).delete()[0]
    return deleted


# --- the fields of a row ------------------------------------------------------------------


def _caller(request: Any) -> EntraPrincipal | None:
    if request is None:
        return None
    # DRF mirrors its user onto the Django request; reading it there never authenticates.
    return request_principal(getattr(request, "_request", request))


def _request_fields(request: Any) -> dict[str, Any]:
    if request is None:
        return {}
    request = getattr(request, "_request", request)
    address = client_ip(request)
    request_id = current_request_id() or getattr(request, "request_id", None) or ""
    return {
        "client_ip": None if address == UNKNOWN_CLIENT else address,
        "request_id": _truncate(request_id, REQUEST_ID_MAX_LENGTH),
        "method": _truncate(request.method or "", METHOD_MAX_LENGTH),
        # The path only: a query string may carry anything, tokens included.
        "path": _truncate(redact_tokens(request.path), PATH_MAX_LENGTH),
        "user_agent": _truncate(
            redact_tokens(request.headers.get("User-Agent", "")), USER_AGENT_MAX_LENGTH
        ),
    }


def _first(explicit: str | None, from_caller: str | None) -> str:
    return str(explicit if explicit is not None else from_caller or "")


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- writing ------------------------------------------------------------------------------


def _write(fields: dict[str, Any]) -> AuditEvent | None:
    try:
        # A savepoint inside the request's transaction: a failed INSERT rolls back only itself,
        # so the view's own queries go on (PostgreSQL would otherwise refuse them all).
        with transaction.atomic(using=router.db_for_write(AuditEvent)):
            return AuditEvent.objects.create(**fields)
    except Exception:  # whatever the store says, the request goes on
        logger.exception(
            "could not write audit event %s (request %s)",
            fields["event_type"],
            fields.get("request_id") or "-",
        )
        return None


def _add_to_count(pk: int, count: int) -> None:
    try:
        with transaction.atomic(using=router.db_for_write(AuditEvent)):
            AuditEvent.objects.filter(pk=pk, count__lt=count).update(count=count)
    except Exception:  # a lost count is logged, never raised
        logger.exception("could not update the count of audit event %s", pk)


def _write_or_count(fields: dict[str, Any], window_s: int) -> AuditEvent | None:
    """The first refusal of its kind in the window writes a row; later ones are counted."""
    cache = caches[entra_settings.CACHE_ALIAS]
    digest = hashlib.sha256(
        "\0".join(str(fields.get(name) or "") for name in _COALESCE_BY).encode()
    ).hexdigest()
    slot_key = f"{_CACHE_PREFIX}slot:{digest}"
    latest_key = f"{_CACHE_PREFIX}latest:{digest}"
    # Counters outlive their window, so that the next window can flush the last few counts.
    counter_ttl_s = 2 * window_s
    window_id = uuid.uuid4().hex
    if cache.add(slot_key, window_id, timeout=window_s):
        previous = cache.get(latest_key)
        cache.set_many({latest_key: window_id, _count_key(window_id): 1}, timeout=counter_ttl_s)
        if previous is not None:
            _flush(cache, previous)
        event = _write(fields)
        if event is not None:
            cache.set(_row_key(window_id), event.pk, timeout=counter_ttl_s)
        return event
    window_id = cache.get(slot_key)
    if window_id is None:
        # The window closed between the two calls: keep this event as a row of its own.
        return _write(fields)
    try:
        cache.incr(_count_key(window_id))
    except ValueError:
        # The counter was evicted: restart it, the row keeps what was flushed so far.
        cache.set(_count_key(window_id), 1, timeout=counter_ttl_s)
    if cache.add(f"{_CACHE_PREFIX}flush:{window_id}", 1, timeout=COALESCE_FLUSH_INTERVAL_S):
        _flush(cache, window_id)
    return None


def _flush(cache: Any, window_id: str) -> None:
    """Copy a window's counted events into its row's ``count``."""
    known = cache.get_many([_row_key(window_id), _count_key(window_id)])
    pk, count = known.get(_row_key(window_id)), known.get(_count_key(window_id))
    if pk is not None and count is not None:
        _add_to_count(pk, int(count))


def _row_key(window_id: str) -> str:
    return f"{_CACHE_PREFIX}row:{window_id}"


def _count_key(window_id: str) -> str:
    return f"{_CACHE_PREFIX}count:{window_id}"


# --- entra_auth's own events --------------------------------------------------------------


@receiver(authentication_failed, dispatch_uid="entra_auth.audit.authentication_failed")
def _authentication_failed(sender: Any, request: Any, reason: str, **kwargs: Any) -> None:
    record(
        EventType.AUTHENTICATION_FAILED,
        request=request,
        outcome=Outcome.FAILURE,
        reason=reason,
        # The token was refused: none of its claims is worth recording.
        tenant_id="",
        subject_oid="",
        app_id="",
    )


@receiver(authorization_denied, dispatch_uid="entra_auth.audit.authorization_denied")
def _authorization_denied(
    sender: Any, request: Any, reason: str, missing: Iterable[str] = (), **kwargs: Any
) -> None:
    record(
        EventType.AUTHORIZATION_DENIED,
        request=request,
        outcome=Outcome.DENIED,
        reason=reason,
        missing=missing,
    )


@receiver(tenant_denied, dispatch_uid="entra_auth.audit.tenant_denied")
def _tenant_denied(sender: Any, request: Any, object_id: Any = "", **kwargs: Any) -> None:
    record(
        EventType.TENANT_DENIED,
        request=request,
        outcome=Outcome.DENIED,
        reason=Reason.OTHER_TENANT,
        object_id=object_id,
    )


@receiver(rate_limited, dispatch_uid="entra_auth.audit.rate_limited")
def _rate_limited(sender: Any, request: Any, reason: str, user: Any = None, **kwargs: Any) -> None:
    # A caller refused right after authentication is not request.user yet: name it here.
    record(
        EventType.RATE_LIMITED,
        request=request,
        outcome=Outcome.DENIED,
        reason=reason,
        tenant_id=getattr(user, "tid", None),
        subject_oid=getattr(user, "oid", None),
        app_id=getattr(user, "app_id", None),
    )
