"""gunicorn settings, from the environment: ``gunicorn -c project/gunicorn.conf.py project.wsgi``.

Workers are stateless (signing keys and rate-limit counters live in the shared cache when
``REDIS_URL`` is set), so add workers or machines freely behind the load balancer.
"""

import multiprocessing
import os
import shutil
import tempfile

# Loopback by default: gunicorn is never exposed directly, only behind the proxy
# (deploy/nginx.conf). Set GUNICORN_BIND where the proxy runs on another host or container.
bind = os.environ.get("GUNICORN_BIND", f"127.0.0.1:{os.environ.get('PORT', '8000')}")
workers = int(os.environ.get("GUNICORN_WORKERS", 2 * multiprocessing.cpu_count() + 1))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
# Recycle workers now and then so a slow leak can never grow without bound.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "10000"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "1000"))
# Entra tokens can be large; the app refuses Authorization headers over 16 KiB itself, with
# a clear RFC 6750 answer, so gunicorn must let them through (its default is 8190 bytes).
limit_request_field_size = 16 * 1024 + 256
# Proxies whose X-Forwarded-* headers gunicorn trusts (comma-separated addresses).
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")
# The app writes one JSON line per request (logger entra_auth.requests): no access log here.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")

# Prometheus metrics (docs/metrics.md), with METRICS_TOKEN set: every worker writes its counts
# to files in PROMETHEUS_MULTIPROC_DIR, and GET /metrics adds them up. The variable must be
# set before any worker imports prometheus_client, so here in the master. Without one from
# the environment, each run gets a directory of its own, removed when gunicorn exits (a
# reload keeps it: the variable is then set already).
_METRICS_DIR_OWNED = "GUNICORN_OWNED_PROMETHEUS_MULTIPROC_DIR"
if os.environ.get("METRICS_TOKEN") and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _metrics_dir = tempfile.mkdtemp(prefix="gunicorn-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.environ[_METRICS_DIR_OWNED] = _metrics_dir


def child_exit(server, worker):
    """A worker is gone: prometheus_client drops its live gauges (its counts stay summed)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    owned = os.environ.get(_METRICS_DIR_OWNED)
    if owned and owned == os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        shutil.rmtree(owned, ignore_errors=True)
