"""Two gunicorn processes sharing Redis count one caller's requests together.

Runs when ``REDIS_URL`` is set (CI's PostgreSQL + Redis leg). The two servers are separate
processes on separate ports and requests alternate between them, so per-process counters
would let through twice as many requests as the limit.
"""

from __future__ import annotations

import os
from contextlib import ExitStack

import pytest
import requests

from entra_auth.dev_issuer import mint_token
from tests.sample.integration.servers import gunicorn, sample_environment

LIMIT = 5
TENANT = "11111111-1111-4111-8111-111111111111"

pytestmark = pytest.mark.skipif(
    not os.environ.get("REDIS_URL"), reason="needs REDIS_URL (a shared Redis)"
)


def _get(url: str, token: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(url, headers=headers, timeout=10).status_code


@pytest.fixture
def two_servers(tmp_path, settings):
    key_file = tmp_path / "dev-key.pem"
    settings.DEBUG = True
    settings.ENTRA_AUTH = {"DEV_ISSUER": True, "DEV_ISSUER_KEY_FILE": str(key_file)}
    token = mint_token(tenant_id=TENANT, scopes=["Payments.Read"])
    # A fresh caller key space for this run: the token's oid is new each time.
    environment = sample_environment(tmp_path, API_RATE_LIMIT=f"{LIMIT}/h")
    with ExitStack() as servers:
        urls = [servers.enter_context(gunicorn(environment, workers=1))[0] for _ in range(2)]
        yield urls, token


def test_rate_limit_is_shared_across_processes_through_redis(two_servers):
    urls, token = two_servers

    statuses = [_get(f"{urls[i % 2]}/api/me/", token) for i in range(LIMIT + 3)]

    assert statuses == [200] * LIMIT + [429] * 3
