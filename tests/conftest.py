"""Shared fixtures: the fake Entra server, Entra settings pointed at it, and API clients.

Two suites share them, one ``pytest`` run per settings module:

- ``pytest`` (``tests.settings``, pytest.ini): entra_auth on its own, everything but
  ``tests/sample``;
- ``pytest --ds=tests.sample.settings tests/sample``: the sample service (``project``,
  ``payments``), only ``tests/sample``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import caches
from rest_framework.test import APIClient

from tests.fake_entra import CLIENT_ID, TENANT_A, FakeEntra

TESTS_DIR = Path(__file__).resolve().parent
SAMPLE_DIR = TESTS_DIR / "sample"
SAMPLE_SETTINGS = "tests.sample.settings"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Collect ``tests/sample`` under the sample's settings only, and nothing else there."""
    path = collection_path.resolve()
    in_sample = path == SAMPLE_DIR or SAMPLE_DIR in path.parents
    if os.environ.get("DJANGO_SETTINGS_MODULE") == SAMPLE_SETTINGS:
        # Keep tests/ itself (it leads to tests/sample); leave paths outside tests/ alone.
        if TESTS_DIR in path.parents and not in_sample:
            return True
        return None
    return True if in_sample else None


@pytest.fixture(scope="session")
def fake_entra_server() -> Iterator[FakeEntra]:
    server = FakeEntra().start()
    yield server
    server.stop()


def entra_config(fake: FakeEntra, **overrides: Any) -> dict[str, Any]:
    """``ENTRA_AUTH`` for a single-tenant API in TENANT_A trusting the fake server."""
    return {
        "INSTANCE": fake.base_url,
        "TENANT_ID": TENANT_A,
        "CLIENT_ID": CLIENT_ID,
        # Rate limits are tested on their own (test_throttling); elsewhere they stay out of
        # the way of tests that send many requests.
        "API_RATE_LIMIT": None,
        "AUTH_FAILURE_RATE_LIMIT": None,
        **overrides,
    }


@pytest.fixture
def fake_entra(fake_entra_server: FakeEntra, settings: Any) -> Iterator[FakeEntra]:
    """A fresh fake Entra (one signing key, no requests counted) and settings trusting it."""
    fake_entra_server.reset()
    for cache in caches.all():
        cache.clear()
    settings.ENTRA_AUTH = entra_config(fake_entra_server)
    yield fake_entra_server
    for cache in caches.all():
        cache.clear()


@pytest.fixture
def configure(fake_entra: FakeEntra, settings: Any):
    """Replace ``ENTRA_AUTH`` for one test: ``configure(TENANT_ID="organizations", ...)``."""

    def apply(**overrides: Any) -> None:
        settings.ENTRA_AUTH = entra_config(fake_entra, **overrides)

    return apply


UNREACHABLE_REDIS = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
        "LOCATION": "redis://127.0.0.1:9/0",
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    }
}


@pytest.fixture
def cache_outage(settings: Any):
    """``with cache_outage():`` runs a block while the shared cache (Redis) is down."""

    @contextmanager
    def outage() -> Iterator[None]:
        working_caches = settings.CACHES
        settings.CACHES = UNREACHABLE_REDIS
        try:
            yield
        finally:
            settings.CACHES = working_caches

    return outage


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return tmp_path / "key.pem"


@pytest.fixture
def dev_issuer(settings: Any, key_file: Path) -> Path:
    """The embedded default: DEBUG on, the dev issuer on, no Entra tenant configured; the
    key file (not created yet) is returned."""
    for cache in caches.all():
        cache.clear()
    settings.DEBUG = True
    settings.ENTRA_AUTH = {"DEV_ISSUER": True, "DEV_ISSUER_KEY_FILE": str(key_file)}
    return key_file


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def artifacts() -> Path:
    """``artifacts/`` at the repository's root (git-ignored): the browser tests' screenshots."""
    directory = TESTS_DIR.parent / "artifacts"
    directory.mkdir(exist_ok=True)
    return directory


@pytest.fixture
def audit_table_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The audit table is gone: every INSERT and UPDATE fails in the database itself."""
    from entra_auth.audit import AuditEvent

    monkeypatch.setattr(AuditEvent._meta, "db_table", "entra_auth_auditevent_missing")


@pytest.fixture(autouse=True)
def audit_counts_flushed_by_the_test(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No background audit flusher: a test flushes with ``audit.flush_pending()`` when it
    means to, and counts it left unflushed never reach another test."""
    from entra_auth import audit

    monkeypatch.setattr(audit, "_start_flusher_automatically", False)
    monkeypatch.setattr(audit, "_counts", audit._PendingCounts())
    yield


@pytest.fixture(autouse=True)
def no_tenant_context_outlives_a_test():
    """A request's tenant must never leak into whatever runs next in the same thread."""
    yield
    from entra_auth.tenancy import current_tenant

    assert current_tenant() is None, "a tenant context outlived the test"
