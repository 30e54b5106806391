"""project.cache.RedisCache keeps Django's cache semantics with fewer round trips."""

from __future__ import annotations

import os

import pytest
from django.core.cache import caches

pytestmark = pytest.mark.skipif(
    not os.environ.get("REDIS_URL"), reason="needs REDIS_URL (a Redis server)"
)


@pytest.fixture
def cache():
    cache = caches["default"]
    cache.clear()
    yield cache
    cache.clear()


def test_incr_of_a_missing_key_raises_value_error_like_django(cache):
    with pytest.raises(ValueError):
        cache.incr("missing")
    assert cache.get("missing") is None


def test_incr_adds_to_an_existing_key_and_keeps_its_expiry(cache):
    cache.add("counter", 1, timeout=60)

    assert cache.incr("counter") == 2
    assert cache.incr("counter", 5) == 7
    assert cache.get("counter") == 7
    client = cache._cache.get_client(write=True)
    assert 0 < client.ttl(cache.make_and_validate_key("counter")) <= 60


def test_one_client_serves_every_operation_of_a_thread(cache):
    client = cache._cache.get_client(write=True)

    assert cache._cache.get_client(write=True) is client


def test_cache_objects_of_one_configuration_share_a_pool_and_a_client(cache):
    # Django builds a cache object per thread and, under ASGI, per request context.
    other = caches.create_connection("default")
    assert other is not cache

    assert other._cache.get_client(write=True) is cache._cache.get_client(write=True)
    other.set("shared", 1)
    assert cache.get("shared") == 1
