"""Metrics under gunicorn as deployed (project/gunicorn.conf.py): with METRICS_TOKEN set, the
workers count into a directory of the run's own, /metrics adds every worker's counts up and
shows them only to the token, and the directory goes when gunicorn exits."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.sample.integration.test_shared_rate_limit import _free_port, _wait_until_serving

ROOT = Path(__file__).resolve().parents[3]
METRICS_TOKEN = secrets.token_urlsafe(32)
REFUSED = 24
STOP_TIMEOUT_S = 30

pytestmark = pytest.mark.skipif(
    os.environ.get("DATABASE_URL", "").startswith("postgres"),
    reason="runs the SQLite default; the metrics do not depend on the database",
)


@pytest.fixture
def server(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "ENTRA_DEV_ISSUER": "1",
        "ENTRA_DEV_ISSUER_WITHOUT_DEBUG": "1",
        "ENTRA_DEV_ISSUER_KEY_FILE": str(tmp_path / "dev-key.pem"),
        "API_AUTH_FAILURE_RATE_LIMIT": "100000/m",
        "METRICS_TOKEN": METRICS_TOKEN,
        # mkdtemp() makes the run's metrics directory here, where the test can see it.
        "TMPDIR": str(tmp_path),
    }
    for name in ("REDIS_URL", "PROMETHEUS_MULTIPROC_DIR"):
        env.pop(name, None)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    port = _free_port()
    process = subprocess.Popen(  # noqa: S603 - our own server
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "project/gunicorn.conf.py",
            "--workers",
            "2",
            "--threads",
            "4",
            "--bind",
            f"127.0.0.1:{port}",
            "project.wsgi",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(base_url, process)
        yield base_url, process, tmp_path
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=STOP_TIMEOUT_S)


def _value(text: str, name: str, **labels: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def _refused(base_url: str) -> int:
    return requests.get(
        f"{base_url}/api/me/", headers={"Authorization": "Bearer not-a-jwt"}, timeout=10
    ).status_code


def test_workers_counts_add_up_behind_the_token_and_the_directory_goes_on_exit(server):
    base_url, process, tmp_path = server

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda _: _refused(base_url), range(REFUSED)))
    assert statuses == [401] * REFUSED

    hidden = requests.get(f"{base_url}/metrics", timeout=10)
    assert hidden.status_code == 401
    assert "entra_auth" not in hidden.text
    # Whichever worker answers, it shows every worker's counts.
    for _ in range(4):
        shown = requests.get(
            f"{base_url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10
        )
        assert shown.status_code == 200
        text = shown.text
        assert (
            _value(text, "entra_auth_authentications_total", outcome="failure", reason="malformed")
            == REFUSED
        )
        assert (
            _value(
                text, "entra_auth_http_requests_total", route="api/me/", method="GET", status="401"
            )
            == REFUSED
        )
        assert METRICS_TOKEN not in text

    directories = list(tmp_path.glob("gunicorn-metrics-*"))
    assert len(directories) == 1
    assert list(directories[0].glob("*.db"))

    process.send_signal(signal.SIGTERM)
    process.wait(timeout=STOP_TIMEOUT_S)
    assert not directories[0].exists()
