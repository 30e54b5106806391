"""Two gunicorn processes sharing Redis count one caller's requests together.

Runs when ``REDIS_URL`` is set (CI's PostgreSQL + Redis leg). The two servers are separate
processes on separate ports and requests alternate between them, so per-process counters
would let through twice as many requests as the limit.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from entra_auth.dev_issuer import mint_token

ROOT = Path(__file__).resolve().parents[3]
LIMIT = 5
START_TIMEOUT_S = 30
TENANT = "11111111-1111-4111-8111-111111111111"

pytestmark = pytest.mark.skipif(
    not os.environ.get("REDIS_URL"), reason="needs REDIS_URL (a shared Redis)"
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str, token: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(url, headers=headers, timeout=10).status_code


def _wait_until_serving(base_url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}")
        try:
            if _get(f"{base_url}/health/live") == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise RuntimeError("gunicorn did not start in time")


@pytest.fixture
def two_servers(tmp_path, settings):
    key_file = tmp_path / "dev-key.pem"
    settings.DEBUG = True
    settings.ENTRA_AUTH = {"DEV_ISSUER": True, "DEV_ISSUER_KEY_FILE": str(key_file)}
    token = mint_token(tenant_id=TENANT, scopes=["Payments.Read"])
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "ENTRA_DEV_ISSUER": "1",
        "ENTRA_DEV_ISSUER_WITHOUT_DEBUG": "1",
        "ENTRA_DEV_ISSUER_KEY_FILE": str(key_file),
        "API_RATE_LIMIT": f"{LIMIT}/h",
        # A fresh caller key space for this run: the token's oid is new each time.
    }
    processes, urls = [], []
    try:
        for _ in range(2):
            port = _free_port()
            process = subprocess.Popen(  # noqa: S603 - our own server
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "-c",
                    "project/gunicorn.conf.py",
                    "--workers",
                    "1",
                    "--bind",
                    f"127.0.0.1:{port}",
                    "project.wsgi",
                ],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            processes.append(process)
            urls.append(f"http://127.0.0.1:{port}")
        for url, process in zip(urls, processes, strict=True):
            _wait_until_serving(url, process)
        yield urls, token
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


def test_rate_limit_is_shared_across_processes_through_redis(two_servers):
    urls, token = two_servers

    statuses = [_get(f"{urls[i % 2]}/api/me/", token) for i in range(LIMIT + 3)]

    assert statuses == [200] * LIMIT + [429] * 3
