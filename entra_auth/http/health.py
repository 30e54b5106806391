"""Health endpoints: liveness (the process answers) and readiness (its dependencies do).

Readiness checks the database, the cache and the signing keys, each with a short time
budget, in parallel; only the database and the keys are required. A failure names the
dependency, never the error: details go to the log.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from django.core.cache import caches
from django.db import close_old_connections, connections
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from ..conf import entra_settings
from ..context import current_request_id

logger = logging.getLogger("entra_auth.health")

CHECK_TIMEOUT_S = 2.0
READY_RETRY_AFTER_S = 5
CACHE_PROBE_TTL_S = 10


@never_cache
@require_safe
def live(request: HttpRequest) -> JsonResponse:
    """200 while the process runs; touches no dependency."""
    return JsonResponse({"status": "ok"})


def check_database() -> None:
    """A round trip on every configured database."""
    try:
        for alias in connections:
            with connections[alias].cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchone()
    finally:
        # The probe runs in a worker thread: its connections must not outlive it.
        close_old_connections()
        for connection in connections.all(initialized_only=True):
            connection.close()


def check_cache() -> None:
    """A write and a read back through ``ENTRA_AUTH["CACHE_ALIAS"]`` (keys, rate limits)."""
    cache = caches[entra_settings.CACHE_ALIAS]
    key = f"entra_auth:health:{uuid.uuid4().hex}"
    cache.set(key, "ok", timeout=CACHE_PROBE_TTL_S)
    try:
        if cache.get(key) != "ok":
            raise RuntimeError("the cache did not return what was written")
    finally:
        cache.delete(key)


def check_signing_keys() -> None:
    """Trusted issuers and their keys are loaded (fetched on a cold start)."""
    from ..validation import get_validator

    if not get_validator().issuers():
        raise RuntimeError("no trusted issuer")


READINESS_CHECKS: dict[str, Callable[[], None]] = {
    "database": check_database,
    "cache": check_cache,
    "signing_keys": check_signing_keys,
}
# Without these the API cannot answer correctly: the instance is not ready. The cache is only
# degrading: keys are held in memory and the rate limits fail open (or closed, as configured)
# while it is down, so a load balancer must not pull every instance for a cache outage.
REQUIRED_CHECKS = frozenset({"database", "signing_keys"})


# One small pool for every probe; a check still hung from an earlier probe is reported as
# timing out instead of being started again, so probes cannot pile up threads.
_executor = ThreadPoolExecutor(max_workers=len(READINESS_CHECKS), thread_name_prefix="ready")
_in_flight: dict[str, Future] = {}
_in_flight_lock = threading.Lock()


def _submit(name: str, check: Callable[[], None]) -> Future | None:
    with _in_flight_lock:
        previous = _in_flight.get(name)
        if previous is not None and not previous.done():
            return None
        future = _in_flight[name] = _executor.submit(check)
        return future


def _run_checks() -> dict[str, str]:
    results: dict[str, str] = {}
    futures = {name: _submit(name, check) for name, check in READINESS_CHECKS.items()}
    for name, future in futures.items():
        if future is None:
            results[name] = "timeout"
            continue
        try:
            future.result(timeout=CHECK_TIMEOUT_S)
            results[name] = "ok"
        except FutureTimeout:
            logger.warning("readiness check %s timed out", name)
            results[name] = "timeout"
        except Exception:
            logger.warning("readiness check %s failed", name, exc_info=True)
            results[name] = "failing"
    return results


@never_cache
@require_safe
def ready(request: HttpRequest) -> JsonResponse:
    """200 while the required dependencies (database, signing keys) are usable, saying
    ``degraded`` when an optional one (the cache) is not; else 503 naming what fails."""
    results = _run_checks()
    failing = sorted(name for name, result in results.items() if result != "ok")
    if not failing:
        return JsonResponse({"status": "ok", "checks": results})
    if REQUIRED_CHECKS.isdisjoint(failing):
        return JsonResponse(
            {
                "status": "degraded",
                "detail": f"Degraded: {', '.join(failing)}.",
                "checks": results,
            }
        )
    response = JsonResponse(
        {
            "status": "unavailable",
            "detail": f"Not ready: {', '.join(failing)}.",
            "checks": results,
            "request_id": current_request_id(),
        },
        status=503,
    )
    response["Retry-After"] = str(READY_RETRY_AFTER_S)
    return response
