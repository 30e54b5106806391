"""Bench-only settings: the project's, plus unprotected copies of the list view (``bench.urls``).

The bench driver sets the environment (fake Entra address, Redis, a temporary database) before
Django starts, in its own process and in the gunicorn workers it launches.
"""

import os

from project.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"

# Each run uses keys of its own in the shared cache, so a run is cold whatever came before,
# and nothing of other users of the same Redis is read, overwritten or flushed.
CACHES["default"]["KEY_PREFIX"] = os.environ.get("BENCH_CACHE_PREFIX", "bench")  # noqa: F405


def _rate(name: str, default: str | None) -> str | None:
    """A rate-limit setting from the environment; ``off`` turns the limit off."""
    value = os.environ.get(name, default)
    return None if value in (None, "", "off") else value


# The load test sends thousands of requests for one caller: the caller limit stays on (so its
# cost is measured) but high enough never to answer 429. The failure limit is the deployment's
# default unless the driver turns it off (the random-``kid`` flood must reach the key store).
ENTRA_AUTH = {
    **ENTRA_AUTH,  # noqa: F405
    "API_RATE_LIMIT": _rate("BENCH_API_RATE_LIMIT", ENTRA_AUTH["API_RATE_LIMIT"]),  # noqa: F405
    "AUTH_FAILURE_RATE_LIMIT": _rate(
        "BENCH_AUTH_FAILURE_RATE_LIMIT",
        ENTRA_AUTH["AUTH_FAILURE_RATE_LIMIT"],  # noqa: F405
    ),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("BENCH_LOG_LEVEL", "WARNING")},
}
