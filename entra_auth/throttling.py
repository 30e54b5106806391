"""Rate limits, counted in the shared cache (docs/rate-limits.md).

- Requests per authenticated caller, keyed by tenant and user (``oid``) or tenant and
  application for app-only callers, counted by ``EntraJWTAuthentication`` right after it
  accepts a token, before any permission is checked (``CallerRateThrottle`` is kept for
  projects that list it; it never counts a request twice). Every request
  counts, so each process counts in memory and writes to the cache in batches
  (``entra_auth.rate_counter``): exact for small limits, within ``(workers - 1) x (batch - 1)``
  requests per window for large ones, and never a cache round trip for most requests.
- Failed authentications per client IP, counted by django-ratelimit (one cache round trip per
  failure, exact across workers): ``EntraJWTAuthentication`` counts each refusal and, once
  over the limit, answers 429 before validating any token it has not already validated (a
  caller with a cached valid token is not locked out by its neighbours).

Both answer 429 with ``Retry-After`` and send ``entra_auth.signals.rate_limited`` (audited).
When the cache is down, the limits let requests through (``RATE_LIMIT_FAIL_OPEN``, the
default) and log a warning: authentication and authorization still apply, a caller a process
has itself counted past the limit is still refused, and a cache outage does not become an API
outage.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import math
import time
from typing import Any

from django.core.cache import caches
from django_ratelimit.core import get_usage
from rest_framework.exceptions import Throttled
from rest_framework.throttling import BaseThrottle

from .client_address import client_ip
from .conf import entra_settings
from .process_caches import register_process_cache
from .rate_counter import BatchedRateCounter, Rate
from .signals import rate_limited

logger = logging.getLogger("entra_auth.throttling")

# Reasons of the rate_limited signal (and of the audit log): an authenticated caller over its
# limit, or a client IP refused before authentication for its failed attempts.
CALLER_RATE_LIMIT = "caller_rate_limit"
AUTH_FAILURE_RATE_LIMIT = "auth_failure_rate_limit"
CALLER_GROUP = "entra_auth.caller"
AUTH_FAILURE_GROUP = "entra_auth.auth_failure"
# Wait announced when the cache cannot tell (fail-closed mode only).
UNKNOWN_WAIT_S = 60


def bucket_usage(
    request: Any, group: str, bucket: str, rate: str, *, increment: bool
) -> dict[str, Any] | None:
    """django-ratelimit's count of ``bucket`` in ``group`` (None when it is turned off); when
    the cache fails, logged, its own failure mark: ``time_left`` -1."""
    try:
        return get_usage(
            request,
            group=group,
            key=lambda _group, _request: bucket,
            rate=rate,
            increment=increment,
        )
    except Exception:  # a cache outage: the caller applies the configured policy
        logger.warning("rate-limit cache unavailable for %s", group, exc_info=True)
        return {"count": 0, "limit": 0, "should_limit": True, "time_left": -1}


def unknown_count_wait() -> int | None:
    """The wait when the cache could not count: none (``RATE_LIMIT_FAIL_OPEN``), or
    ``UNKNOWN_WAIT_S``."""
    return None if entra_settings.RATE_LIMIT_FAIL_OPEN else UNKNOWN_WAIT_S


def _failure_wait(request: Any, bucket: str, rate: str) -> int | None:
    """Count one failed authentication for ``bucket``; seconds to block it once the count
    reaches the limit (the next attempt would be over), else None."""
    usage = bucket_usage(request, AUTH_FAILURE_GROUP, bucket, rate, increment=True)
    if usage is None:
        return None
    if usage["time_left"] < 0:  # django-ratelimit's mark of a failed cache operation
        return unknown_count_wait()
    return max(int(usage["time_left"]), 1) if usage["count"] >= usage["limit"] else None


def caller_key(user: Any) -> str | None:
    """Who a caller is for rate limiting: tenant + user, or tenant + app for app-only tokens."""
    tid = getattr(user, "tid", None)
    if tid is None:
        return None
    if user.is_app_only:
        return f"{tid}:app:{user.app_id}"
    return f"{tid}:user:{user.oid}"


def rate_limit_cache_alias() -> str:
    """The cache holding per-caller counts: ``ENTRA_AUTH["CACHE_ALIAS"]``, like every other
    shared count of entra_auth. django-ratelimit counts failed authentications in its own
    ``RATELIMIT_USE_CACHE``; check ``entra_auth.E025`` insists the two are the same."""
    return entra_settings.CACHE_ALIAS


@functools.lru_cache(maxsize=16)
def parsed_rate(text: str) -> Rate:
    """``Rate.parse``, once per rate string (system check E017 refuses bad ones at start-up)."""
    return Rate.parse(text)


_caller_counter = BatchedRateCounter(
    CALLER_GROUP,
    cache=lambda: caches[rate_limit_cache_alias()],
    max_batch=lambda: entra_settings.API_RATE_LIMIT_BATCH,
)


# Set on the Django request once its caller has been counted, so nothing counts it twice.
_COUNTED_ATTRIBUTE = "_entra_auth_caller_counted"


def _caller_wait(request: Any, user: Any) -> int | None:
    """Count one request of ``user``; the seconds to wait when it is over its limit."""
    django_request = getattr(request, "_request", request)
    if _COUNTED_ATTRIBUTE in vars(django_request):
        return None
    rate = entra_settings.API_RATE_LIMIT
    key = caller_key(user)
    if not rate or key is None:
        return None
    setattr(django_request, _COUNTED_ATTRIBUTE, True)
    count = _caller_counter.hit(key, parsed_rate(rate))
    if count.over:
        return count.seconds_left
    if not count.shared and not entra_settings.RATE_LIMIT_FAIL_OPEN:
        return UNKNOWN_WAIT_S
    return None


def refuse_if_caller_over_limit(request: Any, user: Any) -> None:
    """429 once ``user`` is over ``API_RATE_LIMIT``: counted right after authentication, so a
    caller whose requests are all refused (403, 404) meets the limit too."""
    wait = _caller_wait(request, user)
    if wait is None:
        return
    rate_limited.send_robust(
        sender=CallerRateThrottle, request=request, reason=CALLER_RATE_LIMIT, user=user
    )
    raise Throttled(wait=wait)


class CallerRateThrottle(BaseThrottle):
    """``ENTRA_AUTH["API_RATE_LIMIT"]`` requests per authenticated caller (e.g. ``300/m``).

    ``EntraJWTAuthentication`` applies the limit itself, before authorization; this throttle
    only counts a caller that was not counted there (a custom authentication step), and never
    counts a request twice.
    """

    def __init__(self) -> None:
        self._wait: int | None = None

    def allow_request(self, request: Any, view: Any) -> bool:
        self._wait = _caller_wait(request, request.user)
        if self._wait is None:
            return True
        rate_limited.send_robust(
            sender=type(self), request=request, reason=CALLER_RATE_LIMIT, user=request.user
        )
        return False

    def wait(self) -> float | None:
        return self._wait


IPV6_CLIENT_PREFIX = 64


def client_bucket(request: Any) -> str:
    """Whom failed authentications are counted for: the IPv4 address, or the IPv6 /64.

    One IPv6 host usually holds a whole /64, so counting single addresses would let it rotate
    through them without ever reaching the limit.
    """
    address = client_ip(request)
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if parsed.version == 6:
        return str(ipaddress.ip_network(f"{parsed}/{IPV6_CLIENT_PREFIX}", strict=False))
    return address


# Client buckets over the failed-authentication limit, and until when (monotonic seconds).
# Kept per process so that the check before each new token costs no cache round trip; each
# worker learns of a block from its own next count (at most one more validation per window).
_blocked_until: dict[str, float] = {}
_MAX_BLOCKED_BUCKETS = 10_000
# A block is the verdict of the counts in the configured cache: a new cache starts afresh.
register_process_cache("blocked_clients", _blocked_until.clear, ("ENTRA_AUTH", "CACHES"))
register_process_cache("caller_rate_windows", _caller_counter.reset)


def refuse_if_failing_too_often(request: Any) -> None:
    """429 for a client already over ``AUTH_FAILURE_RATE_LIMIT`` (checked in process memory)."""
    if not entra_settings.AUTH_FAILURE_RATE_LIMIT or not _blocked_until:
        return
    bucket = client_bucket(request)
    until = _blocked_until.get(bucket)
    if until is None:
        return
    remaining = until - time.monotonic()
    if remaining <= 0:
        _blocked_until.pop(bucket, None)
        return
    rate_limited.send_robust(
        sender=CallerRateThrottle, request=request, reason=AUTH_FAILURE_RATE_LIMIT
    )
    raise Throttled(
        wait=math.ceil(remaining), detail="Too many failed authentications from this address."
    )


def count_failed_authentication(request: Any) -> None:
    """Count one refused authentication for the client; at the limit, block it for the window."""
    rate = entra_settings.AUTH_FAILURE_RATE_LIMIT
    if not rate:
        return
    bucket = client_bucket(request)
    wait = _failure_wait(request, bucket, rate)
    if wait is not None:
        if len(_blocked_until) >= _MAX_BLOCKED_BUCKETS:
            _blocked_until.clear()
        _blocked_until[bucket] = time.monotonic() + wait
