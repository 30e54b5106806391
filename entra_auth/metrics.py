"""Prometheus metrics: counters on the core's hooks, a request middleware and ``GET /metrics``.

Needs the ``metrics`` extra (``pip install drf-entra-auth[metrics]``); docs/metrics.md lists
every metric. The core never imports this module: it calls the no-op hooks of
``entra_auth.observe`` and sends the signals of ``entra_auth.signals``, and this module
subscribes to both. Off unless ``ENTRA_AUTH["METRICS_TOKEN"]`` is set::

    MIDDLEWARE = [
        "entra_auth.middleware.RequestContextMiddleware",
        "entra_auth.metrics.MetricsMiddleware",  # right after it: times every other layer
        ...
    ]
    urlpatterns = [path("metrics", metrics_view, name="metrics"), ...]

Label values are fixed words, the URL pattern of a route (never the path, which can carry
ids), a method and a status: never a token, a user id or a tenant id. Values that arrive from
outside the library's own code (a signal's ``reason``, an HTTP method) are bounded: anything
unexpected is counted as ``other``.

Under gunicorn, set ``PROMETHEUS_MULTIPROC_DIR`` before the workers start
(project/gunicorn.conf.py does): each worker then writes its counts to files there, and the
view adds up every worker's.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from django.core.exceptions import MiddlewareNotUsed
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import Resolver404, resolve
from django.utils.cache import add_never_cache_headers

from ._extras import missing_extra

try:
    from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, multiprocess
    from prometheus_client import exposition as _exposition
except ImportError as exc:  # the optional extra is not installed
    raise missing_extra(__name__, "prometheus-client", "metrics") from exc

from . import observe
from .conf import entra_settings
from .exceptions import www_authenticate
from .signals import authentication_failed, authentication_succeeded, rate_limited

__all__ = [
    "MULTIPROCESS_DIR_VARIABLE",
    "MetricsMiddleware",
    "install",
    "metrics_enabled",
    "metrics_view",
    "render",
]

NAMESPACE = "entra_auth"
MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
REALM = "metrics"
# The text exposition format, version 0.0.4, which every Prometheus reads.
CONTENT_TYPE = getattr(_exposition, "CONTENT_TYPE_PLAIN_0_0_4", _exposition.CONTENT_TYPE_LATEST)

OTHER = "other"
UNMATCHED_ROUTE = "<unmatched>"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Seconds: a fetch gives up after HTTP_CONNECT_TIMEOUT + HTTP_READ_TIMEOUT (8 s by default).
KEY_FETCH_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# --- the metrics (the default registry; per worker files in multi-process mode) ------------

AUTHENTICATIONS = Counter(
    "authentications",
    "Bearer tokens judged by EntraJWTAuthentication, by outcome (success, failure, error) "
    "and reason (the audit log's reason codes; ok for a success).",
    ["outcome", "reason"],
    namespace=NAMESPACE,
)
TOKEN_CACHE = Counter(
    "token_cache_lookups",
    "Lookups in the validated-token cache, by result (hit: no cryptography; miss).",
    ["result"],
    namespace=NAMESPACE,
)
KEY_FETCHES = Counter(
    "key_fetches",
    "OpenID metadata and JWKS requests, by document (metadata, jwks) and result (ok, "
    "http_error, timeout, network_error, invalid, refused_url).",
    ["document", "result"],
    namespace=NAMESPACE,
)
KEY_FETCH_DURATION = Histogram(
    "key_fetch_duration_seconds",
    "Duration of OpenID metadata and JWKS requests, by document.",
    ["document"],
    namespace=NAMESPACE,
    buckets=KEY_FETCH_BUCKETS,
)
KEY_REFRESHES = Counter(
    "key_refreshes",
    "Fetches of metadata and keys started by this process, by trigger (cold_start, "
    "scheduled, unknown_kid).",
    ["trigger"],
    namespace=NAMESPACE,
)
RATE_LIMITED = Counter(
    "rate_limited",
    "Requests refused with 429, by limit (caller_rate_limit, auth_failure_rate_limit, "
    "admin_login_rate_limit).",
    ["limit"],
    namespace=NAMESPACE,
)
AUDIT_WRITE_FAILURES = Counter(
    "audit_write_failures",
    "Audit writes that failed, by operation (insert: a row, count: the coalesced counts of a "
    "flush); the log says whether the events are kept for a retry.",
    ["operation"],
    namespace=NAMESPACE,
)
HTTP_REQUESTS = Counter(
    "http_requests",
    "Requests answered, by route (the URL pattern), method and status.",
    ["route", "method", "status"],
    namespace=NAMESPACE,
)
HTTP_REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time from MetricsMiddleware to its answer, by route, method and status class (2xx...).",
    ["route", "method", "status_class"],
    namespace=NAMESPACE,
    buckets=REQUEST_BUCKETS,
)


class BoundedLabel:
    """Label values from outside this module: short lower-case codes, at most ``limit`` of
    them; anything else (a free text, one code too many) becomes ``other``."""

    _CODE = re.compile(r"[a-z][a-z0-9_]{0,47}")

    def __init__(self, limit: int = 64) -> None:
        self.limit = limit
        self._seen: set[str] = set()

    def __call__(self, value: Any) -> str:
        if not isinstance(value, str):
            return OTHER
        if value in self._seen:
            return value
        if not self._CODE.fullmatch(value) or len(self._seen) >= self.limit:
            return OTHER
        self._seen.add(value)
        return value


_reasons = BoundedLabel()
_limits = BoundedLabel(limit=16)


# --- receivers: subscribed by install() ---------------------------------------------------


def _counted(metric: Counter) -> Callable[..., Callable[[], None]]:
    """``inc`` of one labelled child, looked up once per label values (no registry lock on the
    per-request path)."""
    children: dict[tuple[str, ...], Callable[[], None]] = {}

    def child(*labels: str) -> Callable[[], None]:
        inc = children.get(labels)
        if inc is None:
            inc = children[labels] = metric.labels(*labels).inc
        return inc

    return child


_authentication = _counted(AUTHENTICATIONS)
_token_cache = _counted(TOKEN_CACHE)
_rate_limited = _counted(RATE_LIMITED)


def _on_authentication_succeeded(sender: Any, **kwargs: Any) -> None:
    _authentication("success", "ok")()


def _on_authentication_failed(sender: Any, reason: Any = None, **kwargs: Any) -> None:
    _authentication("failure", _reasons(reason))()


def _on_authentication_unavailable() -> None:
    _authentication("error", "keys_unavailable")()


def _on_rate_limited(sender: Any, reason: Any = None, **kwargs: Any) -> None:
    _rate_limited(_limits(reason))()


def _on_token_cache(hit: bool) -> None:
    _token_cache("hit" if hit else "miss")()


def _on_key_fetched(document: str, result: str, seconds: float) -> None:
    KEY_FETCHES.labels(document, result).inc()
    KEY_FETCH_DURATION.labels(document).observe(seconds)


def _on_key_refresh(trigger: str) -> None:
    KEY_REFRESHES.labels(trigger).inc()


def _on_audit_write_failed(operation: str) -> None:
    AUDIT_WRITE_FAILURES.labels(operation).inc()


_installed = False
_install_lock = threading.Lock()


def install() -> None:
    """Subscribe the metrics to the core's signals and hooks (once per process)."""
    global _installed
    if _installed:
        return
    with _install_lock:
        if _installed:
            return
        authentication_succeeded.connect(
            _on_authentication_succeeded, weak=False, dispatch_uid="entra_auth.metrics.success"
        )
        authentication_failed.connect(
            _on_authentication_failed, weak=False, dispatch_uid="entra_auth.metrics.failure"
        )
        rate_limited.connect(
            _on_rate_limited, weak=False, dispatch_uid="entra_auth.metrics.rate_limited"
        )
        observe.authentication_unavailable.connect(_on_authentication_unavailable)
        observe.token_cache.connect(_on_token_cache)
        observe.key_fetched.connect(_on_key_fetched)
        observe.key_refresh.connect(_on_key_refresh)
        observe.audit_write_failed.connect(_on_audit_write_failed)
        _installed = True


def metrics_enabled() -> bool:
    return bool(entra_settings.METRICS_TOKEN)


# --- requests -----------------------------------------------------------------------------


def _route(request: HttpRequest, status: int) -> str:
    """The URL pattern that served the request, never its path.

    A request refused before the URL was resolved (a body too large, a login rate limit) is
    resolved here; a 404 without a route stays ``<unmatched>``, at no extra cost.
    """
    match = getattr(request, "resolver_match", None)
    if match is None and status != 404:
        try:
            match = resolve(request.path_info)
        except Resolver404:
            match = None
    if match is None:
        return UNMATCHED_ROUTE
    return match.route or "/"


class MetricsMiddleware:
    """Counts and times every request by route, method and status, and turns the metrics on.

    Place it right after ``RequestContextMiddleware``. With ``METRICS_TOKEN`` unset at
    start-up Django leaves it out (``MiddlewareNotUsed``) and nothing is counted at all.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        if not metrics_enabled():
            raise MiddlewareNotUsed("ENTRA_AUTH['METRICS_TOKEN'] is not set")
        install()
        self.get_response = get_response
        self._children: dict[tuple[str, str, int], tuple[Callable[[], None], Any]] = {}

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        elapsed = time.perf_counter() - started
        status = response.status_code
        method = request.method if request.method in KNOWN_METHODS else OTHER
        route = _route(request, status)
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                HTTP_REQUESTS.labels(route, method, str(status)).inc,
                HTTP_REQUEST_DURATION.labels(route, method, f"{status // 100}xx").observe,
            )
        children[0]()
        children[1](elapsed)
        return response


# --- GET /metrics -------------------------------------------------------------------------


def render() -> bytes:
    """The text exposition: every worker's counts in multi-process mode, else this process's."""
    if os.environ.get(MULTIPROCESS_DIR_VARIABLE):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return _exposition.generate_latest(registry)
    return _exposition.generate_latest(REGISTRY)


def _digest(text: str) -> bytes:
    # Both sides hashed first: the comparison takes as long whatever the length sent.
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).digest()


def _authorized(request: HttpRequest, expected: str) -> bool:
    scheme, _, credential = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    given = credential.strip() if scheme.lower() == "bearer" else ""
    # Always compared, so a missing header takes as long as a wrong one.
    return hmac.compare_digest(_digest(given), _digest(expected))


def _unauthorized() -> HttpResponse:
    response = HttpResponse(
        "Authentication required.\n", status=401, content_type="text/plain; charset=utf-8"
    )
    response["WWW-Authenticate"] = www_authenticate(REALM)
    add_never_cache_headers(response)
    return response


def metrics_view(request: HttpRequest) -> HttpResponse:
    """``GET /metrics`` for Prometheus, with ``Authorization: Bearer <METRICS_TOKEN>``.

    Without a configured token it is a 404, as if the route did not exist; with one, any
    request without it is a 401 that shows nothing. Never cached.
    """
    expected = entra_settings.METRICS_TOKEN
    if not expected:
        raise Http404()
    if not _authorized(request, expected):
        return _unauthorized()
    if request.method not in ("GET", "HEAD"):
        response = HttpResponse(status=405)
        response["Allow"] = "GET, HEAD"
        return response
    install()
    response = HttpResponse(render(), content_type=CONTENT_TYPE)
    add_never_cache_headers(response)
    return response
