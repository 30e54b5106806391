"""Recording audit events (docs/audit.md): ``record()``, event types, coalescing and retention.

``entra_auth`` records refusals itself by subscribing to its signals (``entra_auth.signals``):
failed authentications, authorization and tenant denials, rate limiting. A host app records
its sensitive actions with ``record()``, after registering their type once::

    from entra_auth import audit

    PAYMENT_CREATED = audit.register_event_type("payment_created", "Payment created")
    audit.record(PAYMENT_CREATED, request=request, object=payment)  # "payments.payment" + pk

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
  IP, reason and caller within ``AUDIT_COALESCE_WINDOW`` seconds writes a row (the shared cache
  decides which one, with ``cache.add``); each process counts the others in memory, and a
  background thread adds them to the row with ``count = count + n`` every
  ``COALESCE_FLUSH_INTERVAL_S`` seconds and at exit, with no request needed. Every counted
  refusal is added exactly once; a process killed outright (SIGKILL) loses at most the counts
  of its last flush interval. A failed write keeps its counts for the next flush (at most
  ``MAX_PENDING_ROWS`` rows per process). ``flush_pending()`` flushes now.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.cache import caches
from django.db import close_old_connections, connections, router, transaction
from django.db.models import Case, F, Q, Value, When
from django.dispatch import receiver
from django.utils import timezone

from . import observe
from .client_address import UNKNOWN_CLIENT, client_ip
from .conf import entra_settings
from .context import current_request_id
from .exceptions import ReportInterval
from .logging import redact_tokens, request_principal
from .models import (
    EVENT_TYPE_MAX_LENGTH,
    METHOD_MAX_LENGTH,
    MISSING_MAX_LENGTH,
    OBJECT_ID_MAX_LENGTH,
    OBJECT_TYPE_MAX_LENGTH,
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
    "flush_pending",
    "prune",
    "record",
    "register_event_type",
]

logger = logging.getLogger("entra_auth.audit")

# Each process adds its coalesced counts to their rows this often (one UPDATE per row), from a
# background thread: the last refusals of a burst reach the database with no further request.
COALESCE_FLUSH_INTERVAL_S = 2
# Counts waiting for a row another process is writing wait this long before they are written
# as a row of their own (that process failed, or its transaction rolled back).
ROW_WAIT_S = 3 * COALESCE_FLUSH_INTERVAL_S
# Rows a process holds counts for, at most; past that an event is written as a row of its own.
MAX_PENDING_ROWS = 10_000
# Failures of the background flush are logged at most this often (an outage is one story).
FLUSH_FAILURE_LOG_INTERVAL_S = 60
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
    object: Any = None,
    object_type: str = "",
) -> AuditEvent | None:
    """Record one audit event; the row, or None when coalesced or when it could not be written.

    The caller's tenant, ``oid`` and app id default to ``request.user``'s when it is an Entra
    principal. ``object=`` (a model instance) fills ``object_type`` (its model's label, such as
    ``"payments.payment"``) and ``object_id`` (its primary key); without an instance, pass
    ``object_type=`` and ``object_id=``. A storage failure is logged, never raised; an unknown
    ``event_type`` or ``outcome`` is a programming error and raises ``ValueError``.
    """
    if event_type not in _event_types:
        raise ValueError(
            f"Unknown audit event type {event_type!r}: register it with "
            "entra_auth.audit.register_event_type()."
        )
    if outcome not in Outcome.values:
        raise ValueError(f"Audit outcome must be one of {Outcome.values}, not {outcome!r}.")
    caller = _caller(request)
    if object is not None:
        object_type = object_type or _object_type(object)
        if object_id in ("", None):
            object_id = getattr(object, "pk", "")
    occurred_at = timezone.now()
    fields = {
        "occurred_at": occurred_at,
        **_request_fields(request),
        "event_type": str(event_type),
        "outcome": str(outcome),
        "reason": _truncate(str(reason), REASON_MAX_LENGTH),
        "tenant_id": _first(tenant_id, getattr(caller, "tid", None)),
        "subject_oid": _first(subject_oid, getattr(caller, "oid", None)),
        "app_id": _first(app_id, getattr(caller, "app_id", None)),
        "object_type": _truncate(str(object_type or ""), OBJECT_TYPE_MAX_LENGTH),
        "object_id": _truncate("" if object_id is None else str(object_id), OBJECT_ID_MAX_LENGTH),
        "missing": _truncate(" ".join(missing), MISSING_MAX_LENGTH),
    }
    # A row of one event: its first event is also its last.
    fields["last_occurred_at"] = occurred_at
    fields["last_request_id"] = fields.get("request_id", "")
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


def _object_type(obj: Any) -> str:
    """A model instance's label (``"payments.payment"``); ``""`` for anything else."""
    meta = getattr(obj, "_meta", None)
    return str(getattr(meta, "label_lower", "") or "")


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
        observe.audit_write_failed.send("insert")
        logger.exception(
            "could not write audit event %s (request %s)",
            fields["event_type"],
            fields.get("request_id") or "-",
        )
        return None


def _write_or_count(fields: dict[str, Any], window_s: int) -> AuditEvent | None:
    """The first refusal of its kind in the window writes a row; later ones are counted.

    The shared cache only decides which row a window's refusals go to: ``cache.add`` of the
    window's slot elects the one request that writes the row, and the row's id is published
    under the window's id once written. The other refusals of the window, in any process, are
    counted in that process's memory and added to the row by ``flush_pending()``.
    """
    cache = caches[entra_settings.CACHE_ALIAS]
    digest = hashlib.sha256(
        "\0".join(str(fields.get(name) or "") for name in _COALESCE_BY).encode()
    ).hexdigest()
    slot_key = f"{_CACHE_PREFIX}slot:{digest}"
    window_id = uuid.uuid4().hex
    if cache.add(slot_key, window_id, timeout=window_s):
        return _write_first(fields, window_id, window_s)
    window_id = cache.get(slot_key)
    if window_id is None or not _counts.add(window_id, fields, wait_s=ROW_WAIT_S):
        # The window closed between the two calls, or this process holds counts for too many
        # rows already: keep this event as a row of its own.
        return _write(fields)
    _ensure_flusher()
    return None


def _write_first(fields: dict[str, Any], window_id: str, window_s: int) -> AuditEvent | None:
    """Write a window's row; if the database refuses, keep the event for the next flush."""
    try:
        with transaction.atomic(using=router.db_for_write(AuditEvent)):
            event = AuditEvent.objects.create(**fields)
    except Exception:  # kept in memory and retried: a refusal is not lost to an outage
        observe.audit_write_failed.send("insert")
        kept = _counts.add(window_id, fields, wait_s=0)
        logger.warning(
            "could not write audit event %s (request %s); %s",
            fields["event_type"],
            fields.get("request_id") or "-",
            "it is kept for the next flush" if kept else "too many counts are pending: it is lost",
            exc_info=True,
        )
        if kept:
            _ensure_flusher()
        return None
    # Should the row roll back with the request after all, the counts meant for it find no
    # row to add to and are written as a row of their own.
    _publish_row(window_id, event.pk, window_s)
    return event


def _publish_row(window_id: str, pk: int, window_s: int, *, only_if_new: bool = False) -> None:
    """Tell every process which row the window's counts go to."""
    try:
        cache = caches[entra_settings.CACHE_ALIAS]
        # Long enough for every process to flush the window's counts, outages included.
        timeout = 2 * window_s + 10 * ROW_WAIT_S
        if only_if_new:
            cache.add(_row_key(window_id), pk, timeout=timeout)
        else:
            cache.set(_row_key(window_id), pk, timeout=timeout)
    except Exception:  # the others then write rows of their own: counts are kept either way
        logger.warning("could not publish audit row %s of a coalescing window", pk, exc_info=True)


def _row_key(window_id: str) -> str:
    return f"{_CACHE_PREFIX}row:{window_id}"


@dataclass
class _Pending:
    """Refusals of one coalescing window this process counted and has not yet written."""

    window_id: str
    fields: dict[str, Any]  # the first of them: a row of its own if the window's never shows
    count: int
    last_request_id: str
    last_occurred_at: datetime
    write_own_row_at: float  # time.monotonic() after which it stops waiting for the row

    def absorb(self, other: _Pending) -> None:
        """Add ``other``'s refusals (of the same window) to these."""
        self.count += other.count
        if other.fields["occurred_at"] < self.fields["occurred_at"]:
            self.fields = other.fields
        self.saw(other.last_request_id, other.last_occurred_at)
        self.write_own_row_at = min(self.write_own_row_at, other.write_own_row_at)

    def saw(self, request_id: str, occurred_at: datetime) -> None:
        """A refusal of this window at ``occurred_at``: the last one wins the ``last_*``."""
        if occurred_at >= self.last_occurred_at:
            self.last_request_id = request_id
            self.last_occurred_at = occurred_at


class _PendingCounts:
    """One process's counted refusals, by window, until ``flush_pending()`` writes them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_window: dict[str, _Pending] = {}

    def __len__(self) -> int:
        return len(self._by_window)

    def add(self, window_id: str, fields: dict[str, Any], *, wait_s: float) -> bool:
        """Count one refusal of ``window_id``; False when too many rows are pending already."""
        request_id = fields.get("request_id", "")
        occurred_at = fields["occurred_at"]
        with self._lock:
            pending = self._by_window.get(window_id)
            if pending is None:
                if len(self._by_window) >= MAX_PENDING_ROWS:
                    return False
                self._by_window[window_id] = _Pending(
                    window_id=window_id,
                    fields=fields,
                    count=1,
                    last_request_id=request_id,
                    last_occurred_at=occurred_at,
                    write_own_row_at=time.monotonic() + wait_s,
                )
                return True
            pending.count += 1
            pending.saw(request_id, occurred_at)
            return True

    def take(self) -> list[_Pending]:
        """Everything counted so far; new refusals are counted afresh from now on."""
        with self._lock:
            taken = list(self._by_window.values())
            self._by_window.clear()
        return taken

    def put_back(self, unwritten: list[_Pending]) -> None:
        """Keep what a flush could not write, with whatever was counted meanwhile."""
        with self._lock:
            for pending in unwritten:
                newer = self._by_window.get(pending.window_id)
                if newer is not None:
                    pending.absorb(newer)
                self._by_window[pending.window_id] = pending


_counts = _PendingCounts()
_flush_failure_reports = ReportInterval(FLUSH_FAILURE_LOG_INTERVAL_S)


def flush_pending(*, final: bool = False) -> int:
    """Add every refusal this process counted to its row now; returns how many were written.

    The background flusher calls it every ``COALESCE_FLUSH_INTERVAL_S`` seconds and once more
    at exit (``final``: counts whose row never appeared become rows of their own at once). Each
    row gets one ``UPDATE ... SET count = count + n`` (never an overwrite), so the counts of
    every process add up. Never raises: what cannot be written now is kept for the next call.
    """
    taken = _counts.take()
    if not taken:
        return 0
    rows = _published_rows([pending.window_id for pending in taken])
    now = time.monotonic()
    written = 0
    unwritten: list[_Pending] = []
    failure: Exception | None = None
    for pending in taken:
        pk = rows.get(pending.window_id)
        if pk is None and not final and now < pending.write_own_row_at:
            unwritten.append(pending)  # the row is still being written by another request
            continue
        try:
            if pk is None or not _add_to_count(pk, pending):
                # Its row never appeared, or is gone (rolled back, pruned): a row of its own.
                _write_pending_row(pending)
            written += pending.count
        except Exception as exc:  # noqa: BLE001 -- logged below, once per outage; kept for retry
            failure = exc
            unwritten.append(pending)
    if unwritten:
        _counts.put_back(unwritten)
    if failure is not None:
        observe.audit_write_failed.send("count")
        _log_flush_failure(failure, sum(p.count for p in unwritten))
    return written


def _published_rows(window_ids: list[str]) -> dict[str, int]:
    try:
        cache = caches[entra_settings.CACHE_ALIAS]
        found = cache.get_many([_row_key(window_id) for window_id in window_ids])
    except Exception:  # no cache: rows unknown, their counts become rows of their own
        logger.warning("could not read the rows of coalescing windows", exc_info=True)
        return {}
    prefix_length = len(_row_key(""))
    return {key[prefix_length:]: pk for key, pk in found.items()}


def _add_to_count(pk: int, pending: _Pending) -> bool:
    """``count = count + n`` on the row, and its last request if later; False if it is gone."""
    later = Q(last_occurred_at__isnull=True) | Q(last_occurred_at__lt=pending.last_occurred_at)
    with transaction.atomic(using=router.db_for_write(AuditEvent)):
        updated = AuditEvent.objects.filter(pk=pk).update(
            count=F("count") + pending.count,
            # Both read the row's old values (SQL evaluates every SET against the old row).
            last_request_id=Case(
                When(later, then=Value(pending.last_request_id)), default=F("last_request_id")
            ),
            last_occurred_at=Case(
                When(later, then=Value(pending.last_occurred_at)), default=F("last_occurred_at")
            ),
        )
    return updated == 1


def _write_pending_row(pending: _Pending) -> None:
    with transaction.atomic(using=router.db_for_write(AuditEvent)):
        event = AuditEvent.objects.create(
            **{
                **pending.fields,
                "count": pending.count,
                "last_request_id": pending.last_request_id,
                "last_occurred_at": pending.last_occurred_at,
            }
        )
    # The window's other processes may still be waiting for a row: this one will do.
    window_s = int(entra_settings.AUDIT_COALESCE_WINDOW or 0)
    _publish_row(pending.window_id, event.pk, window_s, only_if_new=True)


def _log_flush_failure(failure: Exception, kept: int) -> None:
    if _flush_failure_reports.due() is None:
        return
    logger.error(
        "could not add coalesced counts to the audit log (%s); %d refusal(s) kept for retry",
        type(failure).__name__,
        kept,
        exc_info=failure,
    )


# --- the background flusher ---------------------------------------------------------------


class _Flusher(threading.Thread):
    """A daemon thread calling ``flush_pending()`` every ``interval_s`` seconds.

    ``flush`` and ``wait`` can be replaced to test its schedule: ``wait(interval_s)`` returns
    True when the thread should stop (by default it waits on the thread's stop event).
    """

    def __init__(
        self,
        interval_s: float | None = None,
        *,
        flush: Callable[[], Any] | None = None,
        wait: Callable[[float], bool] | None = None,
    ) -> None:
        super().__init__(name="entra_auth audit flusher", daemon=True)
        self.interval_s = COALESCE_FLUSH_INTERVAL_S if interval_s is None else interval_s
        self._stopping = threading.Event()
        self._flush = flush or (lambda: flush_pending())
        self._wait = wait or self._stopping.wait

    def run(self) -> None:
        try:
            while not self._wait(self.interval_s):
                self.flush_once()
        finally:
            if self._in_own_thread():
                connections.close_all()  # this thread's own connections

    def flush_once(self) -> None:
        try:
            self._flush()
        except Exception:  # flush_pending never raises; a replaced flush must not end the thread
            logger.exception("audit flush failed")
        finally:
            if self._in_own_thread():
                close_old_connections()  # as after a request: no connection outlives its use

    def _in_own_thread(self) -> bool:
        # Connections are per thread: close only those this thread opened.
        return threading.current_thread() is self

    def stop(self, timeout_s: float | None = None) -> None:
        self._stopping.set()
        if self.is_alive() and self is not threading.current_thread():
            self.join(timeout_s)


_flusher: _Flusher | None = None
_flusher_lock = threading.Lock()
# Tests switch it off and call flush_pending() themselves.
_start_flusher_automatically = True


def _ensure_flusher() -> None:
    """Start this process's flusher on its first counted refusal (lazily, once)."""
    global _flusher
    if not _start_flusher_automatically:
        return
    flusher = _flusher
    if flusher is not None and flusher.is_alive():
        return
    with _flusher_lock:
        if _flusher is None or not _flusher.is_alive():
            try:
                flusher = _Flusher()
                flusher.start()
            except Exception:  # counts stay pending: the next refusal, or the exit, writes them
                logger.exception("could not start the audit flusher thread")
                return
            _flusher = flusher


def _flush_at_exit() -> None:
    """The last flush of a process that exits normally (a gunicorn worker restarting)."""
    if _flusher is not None:
        _flusher.stop(timeout_s=COALESCE_FLUSH_INTERVAL_S)
    if len(_counts):
        flush_pending(final=True)


def _forget_parent_counts() -> None:
    # A forked child starts empty: the parent writes its own counts, each exactly once.
    global _counts, _flusher, _flusher_lock
    _counts = _PendingCounts()
    _flusher = None
    _flusher_lock = threading.Lock()


atexit.register(_flush_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_parent_counts)


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
def _tenant_denied(
    sender: Any, request: Any, object_id: Any = "", object_type: str = "", **kwargs: Any
) -> None:
    record(
        EventType.TENANT_DENIED,
        request=request,
        outcome=Outcome.DENIED,
        reason=Reason.OTHER_TENANT,
        object_id=object_id,
        object_type=object_type,
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
